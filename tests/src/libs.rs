//! The libraries and the `host-harness` binary the tests load, built from the current tree.
//!
//! Unless `PLUGIN_LIB_DIR` names a directory, the first test of a process that needs them runs
//!
//! ```text
//! $CARGO build -p adaptor -p base -p go-adaptor -p go-base -p host-harness \
//!     -p fluentbit-output -p fluentbit-input --features base/test-plugins,go-base/test-plugins \
//!     --target-dir <target-dir>/e2e-libs --profile <profile> [--target <triple>]
//! ```
//!
//! and every test of that process loads exactly the files this build reports. Cargo decides
//! what is stale, so an edit anywhere in the tree (sources, features, dependencies) is in the
//! libraries the tests load, and a build that fails fails every test that needs them, with
//! cargo's output. A plain `cargo test --workspace` therefore needs neither a `cargo build`
//! before it nor `--features base/test-plugins`.
//!
//! - `<target-dir>` and `<profile>` are those of the test binary itself
//!   (`<target-dir>/[<triple>/]<profile>/deps/<test>`), so `CARGO_TARGET_DIR`,
//!   `CARGO_BUILD_TARGET_DIR`, `--target-dir`, `--release` and `--profile` given to
//!   `cargo test` are followed.
//! - `e2e-libs` is a target directory of its own: the outer `cargo test` builds `base` with
//!   the features of the workspace (usually without `test-plugins`), and cargo writes a
//!   cdylib of every feature set to the same file, so sharing one directory would rebuild
//!   `base` twice on every run.
//! - The outer `cargo test` does not hold the lock of its build directory while the tests
//!   run, and the nested build uses another directory anyway; several test processes
//!   building at once are serialised by cargo's lock on `e2e-libs`, and the threads of one
//!   process wait for the single build ([`OnceLock`]).
//! - The build's output is kept and shown only when it fails: passing tests stay quiet.
//!
//! `PLUGIN_LIB_DIR=DIR` is an explicit override (to run new tests against an older build, or
//! against release libraries): `DIR` is used as it is, nothing is built and nothing extra is
//! printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

use crate::util::repo_root;

/// Environment variable naming a directory whose libraries and harness are used as they are.
pub const LIB_DIR_ENV: &str = "PLUGIN_LIB_DIR";

/// The target directory of the nested build, inside the test binary's target directory.
pub const LIBS_TARGET_SUBDIR: &str = "e2e-libs";

/// The packages the nested build builds.
pub const PACKAGES: [&str; 7] = [
    "adaptor",
    "base",
    "go-adaptor",
    "go-base",
    "host-harness",
    "fluentbit-output",
    "fluentbit-input",
];

/// The features the nested build enables (the tests need the test-only plugins).
pub const FEATURES: &str = "base/test-plugins,go-base/test-plugins";

/// The directory given by `PLUGIN_LIB_DIR`, when it is set and not empty.
pub fn override_dir() -> Option<PathBuf> {
    std::env::var_os(LIB_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// What the nested build produced.
#[derive(Clone, Debug)]
pub struct Built {
    /// The directory holding all three files.
    pub dir: PathBuf,
    /// `libPluginAdapter.so`.
    pub adaptor: PathBuf,
    /// `libPluginBase.so`.
    pub base: PathBuf,
    /// `libGoPluginAdapter.so` (LoongCollector 3.x's name).
    pub go_adaptor: PathBuf,
    /// `libGoPluginBase.so` (LoongCollector 3.x's name).
    pub go_base: PathBuf,
    /// The `host-harness` executable.
    pub harness: PathBuf,
    /// The Fluent Bit output plugin, `libpluginrt_fbout.so`.
    pub fb_output: PathBuf,
    /// The Fluent Bit input plugin, `libpluginrt_fbin.so`.
    pub fb_input: PathBuf,
    /// Features `base` was built with (as cargo reports them).
    pub base_features: Vec<String>,
    /// The command that built them, for messages.
    pub command: String,
}

/// Builds the libraries and the harness once per process and returns what was built.
///
/// # Panics
/// When the build fails or does not report all three files (every call panics with the
/// same message; the build is not retried).
pub fn built() -> &'static Built {
    static BUILT: OnceLock<Result<Built, String>> = OnceLock::new();
    match BUILT.get_or_init(build) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

/// Where the test binary says the build should go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The target directory of the test binary.
    pub target_dir: PathBuf,
    /// The profile directory name (`debug`, `release`, a custom profile).
    pub profile_dir: String,
    /// `--target` triple when the test binary was cross-built.
    pub triple: Option<String>,
}

impl Layout {
    /// The `--profile` argument for [`Layout::profile_dir`] (`debug` is profile `dev`).
    pub fn profile(&self) -> &str {
        match self.profile_dir.as_str() {
            "debug" => "dev",
            p => p,
        }
    }

    /// From the path of a test binary: `<target-dir>/[<triple>/]<profile>/deps/<test>`.
    /// The target directory is the nearest one holding cargo's `CACHEDIR.TAG`.
    pub fn from_test_exe(exe: &Path) -> Option<Layout> {
        let deps = exe.parent()?;
        if deps.file_name()? != "deps" {
            return None;
        }
        let profile_dir = deps.parent()?;
        let profile_name = profile_dir.file_name()?.to_str()?.to_owned();
        let up = profile_dir.parent()?;
        if !up.join("CACHEDIR.TAG").exists() {
            if let (Some(top), Some(triple)) = (up.parent(), up.file_name()) {
                if top.join("CACHEDIR.TAG").exists() {
                    return Some(Layout {
                        target_dir: top.to_path_buf(),
                        profile_dir: profile_name,
                        triple: Some(triple.to_str()?.to_owned()),
                    });
                }
            }
        }
        Some(Layout {
            target_dir: up.to_path_buf(),
            profile_dir: profile_name,
            triple: None,
        })
    }

    /// The layout of this test process; when its binary is not in a cargo target directory,
    /// `CARGO_TARGET_DIR`, else `CARGO_BUILD_TARGET_DIR`, else `<repo>/target`, profile `debug`.
    pub fn current() -> Layout {
        if let Some(l) = std::env::current_exe()
            .ok()
            .and_then(|e| Layout::from_test_exe(&e))
        {
            return l;
        }
        let target_dir = ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"]
            .iter()
            .find_map(|v| std::env::var_os(v).filter(|d| !d.is_empty()))
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target"));
        Layout {
            target_dir,
            profile_dir: "debug".into(),
            triple: None,
        }
    }
}

/// The cargo that runs this test (`CARGO` at run time, else at compile time, else `cargo`).
fn cargo() -> PathBuf {
    std::env::var_os("CARGO")
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .or_else(|| option_env!("CARGO").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("cargo"))
}

/// The nested build command for `layout`.
pub fn build_command(layout: &Layout) -> Command {
    let libs_target = layout.target_dir.join(LIBS_TARGET_SUBDIR);
    let mut cmd = Command::new(cargo());
    cmd.current_dir(repo_root())
        .arg("build")
        .arg("--manifest-path")
        .arg(repo_root().join("Cargo.toml"));
    for p in PACKAGES {
        cmd.args(["-p", p]);
    }
    cmd.args(["--features", FEATURES])
        .arg("--target-dir")
        .arg(&libs_target)
        .args(["--profile", layout.profile()])
        .arg("--message-format=json-render-diagnostics")
        // A `build.build-dir` configured for the outer build would put base's objects back
        // next to the outer ones: this build keeps everything in its own directory.
        .env("CARGO_BUILD_BUILD_DIR", &libs_target)
        .stdin(Stdio::null());
    if let Some(t) = &layout.triple {
        cmd.args(["--target", t]);
    }
    cmd
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// The features cargo reports for a compiler-artifact message.
fn features(msg: &Value) -> Vec<String> {
    msg["features"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

fn build() -> Result<Built, String> {
    let layout = Layout::current();
    let mut cmd = build_command(&layout);
    let command = describe(&cmd);
    let out = cmd.output().map_err(|e| {
        format!("e2e: cannot run `{command}` to build the libraries the tests load: {e}")
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let fail = |why: String| {
        format!(
            "e2e: {why}\n\
             command: {command}\n\
             (the end-to-end tests load only libraries built from the current tree; \
             set {LIB_DIR_ENV}=DIR to test an existing build instead)\n\
             --- cargo stderr (last 80 lines) ---\n{}",
            tail(&stderr, 80)
        )
    };
    if !out.status.success() {
        return Err(fail(format!(
            "building the libraries the tests load failed ({})",
            out.status
        )));
    }
    let (mut adaptor, mut base, mut harness, mut base_features) = (None, None, None, Vec::new());
    let (mut fb_output, mut fb_input) = (None, None);
    let (mut go_adaptor, mut go_base, mut go_base_features) = (None, None, Vec::new());
    for line in stdout.lines() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let files = || {
            msg["filenames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(PathBuf::from)
        };
        let named = |name: &str| files().find(|f| f.file_name().is_some_and(|n| n == name));
        match msg["target"]["name"].as_str() {
            Some("PluginAdapter") => adaptor = named("libPluginAdapter.so"),
            Some("PluginBase") => {
                base = named("libPluginBase.so");
                base_features = features(&msg);
            }
            Some("GoPluginAdapter") => go_adaptor = named("libGoPluginAdapter.so"),
            Some("GoPluginBase") => {
                go_base = named("libGoPluginBase.so");
                go_base_features = features(&msg);
            }
            Some("host-harness") => harness = msg["executable"].as_str().map(PathBuf::from),
            Some("pluginrt_fbout") => fb_output = named("libpluginrt_fbout.so"),
            Some("pluginrt_fbin") => fb_input = named("libpluginrt_fbin.so"),
            _ => {}
        }
    }
    let (
        Some(adaptor),
        Some(base),
        Some(go_adaptor),
        Some(go_base),
        Some(harness),
        Some(fb_output),
        Some(fb_input),
    ) = (
        adaptor, base, go_adaptor, go_base, harness, fb_output, fb_input,
    )
    else {
        return Err(fail(
            "the build did not report libPluginAdapter.so, libPluginBase.so, \
             libGoPluginAdapter.so, libGoPluginBase.so, host-harness, libpluginrt_fbout.so \
             and libpluginrt_fbin.so"
                .into(),
        ));
    };
    for (file, features) in [
        ("libPluginBase.so", &base_features),
        ("libGoPluginBase.so", &go_base_features),
    ] {
        if !features.iter().any(|f| f == "test-plugins") {
            return Err(fail(format!(
                "{file} was built without feature test-plugins (features {features:?})"
            )));
        }
    }
    let dir = base.parent().map(Path::to_path_buf).unwrap_or_default();
    for f in [
        &adaptor,
        &base,
        &go_adaptor,
        &go_base,
        &harness,
        &fb_output,
        &fb_input,
    ] {
        if f.parent() != Some(dir.as_path()) {
            return Err(fail(format!(
                "{} is not in {} with libPluginBase.so",
                f.display(),
                dir.display()
            )));
        }
        if !f.is_file() {
            return Err(fail(format!(
                "{} was reported by cargo but does not exist",
                f.display()
            )));
        }
    }
    Ok(Built {
        dir,
        adaptor,
        base,
        go_adaptor,
        go_base,
        harness,
        fb_output,
        fb_input,
        base_features,
        command,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_follows_the_test_binary() {
        let tmp = crate::TempDir::new("layout");
        let t = tmp.path().join("tgt");
        std::fs::create_dir_all(t.join("release/deps")).unwrap();
        std::fs::create_dir_all(t.join("x86_64-unknown-linux-gnu/debug/deps")).unwrap();
        std::fs::write(t.join("CACHEDIR.TAG"), "").unwrap();

        let l = Layout::from_test_exe(&t.join("release/deps/x-0123")).unwrap();
        assert_eq!(l.target_dir, t);
        assert_eq!(l.profile(), "release");
        assert_eq!(l.triple, None);

        let l = Layout::from_test_exe(&t.join("x86_64-unknown-linux-gnu/debug/deps/x")).unwrap();
        assert_eq!(l.target_dir, t);
        assert_eq!(l.profile(), "dev");
        assert_eq!(l.triple.as_deref(), Some("x86_64-unknown-linux-gnu"));

        assert_eq!(Layout::from_test_exe(&t.join("release/x")), None);
    }
}
