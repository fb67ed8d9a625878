//! `validate`: check configs with the base's `CheckConfig` export, without starting anything.
//!
//! Output, per file: one `FILE: ERROR` line per error (then the file counts as invalid), one
//! `FILE: warning: WARNING` line per warning from `CheckConfigWarnings` when the base exports
//! it (warnings never make a file invalid), and `OK FILE` last for a valid file. The exit code
//! is 1 when some file is invalid, 0 otherwise.

use std::path::Path;

use crate::cli::ValidateOpts;
use crate::libs::{load_for_command, Flavour};
use crate::run::config_files;

/// What `validate` found for one file, as the lines it prints: warnings, then the errors or
/// `OK FILE`.
pub fn lines_for(file: &Path, errors: Option<&str>, warnings: Option<&str>) -> Vec<String> {
    let shown = file.display();
    let mut lines: Vec<String> = warnings
        .unwrap_or_default()
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .map(|l| format!("{shown}: warning: {l}"))
        .collect();
    lines.extend(error_lines(file, errors));
    lines
}

fn error_lines(file: &Path, errors: Option<&str>) -> Vec<String> {
    let shown = file.display();
    match errors {
        None => vec![format!("OK {shown}")],
        Some(text) => {
            let lines: Vec<String> = text
                .lines()
                .map(str::trim_end)
                .filter(|l| !l.is_empty())
                .map(|l| format!("{shown}: {l}"))
                .collect();
            if lines.is_empty() {
                vec![format!("{shown}: invalid (the base gave no reason)")]
            } else {
                lines
            }
        }
    }
}

/// Runs the `validate` command; returns the exit code.
pub fn run(o: ValidateOpts) -> i32 {
    let files = match config_files(&o.configs) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("harness: error: {e}");
            return 2;
        }
    };
    let Some(libs) = load_for_command(o.lib_dir.as_deref(), Flavour::Logtail) else {
        return 2;
    };
    let mut invalid = 0;
    for f in &files {
        let shown = f.path.display();
        let json = match std::fs::read_to_string(&f.path) {
            Ok(j) => j,
            Err(e) => {
                println!("{shown}: cannot read the file: {e}");
                invalid += 1;
                continue;
            }
        };
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&json) {
            println!("{shown}: not valid JSON: {e}");
            invalid += 1;
            continue;
        }
        let errors = match libs.check_config(&f.name, &json) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("{e}");
                return 2;
            }
        };
        if errors.is_some() {
            invalid += 1;
        }
        let warned = libs.check_config_warnings(&f.name, &json);
        for line in lines_for(&f.path, errors.as_deref(), warned.as_deref()) {
            println!("{line}");
        }
    }
    i32::from(invalid > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_every_error_line() {
        let p = Path::new("cfg/a.json");
        assert_eq!(lines_for(p, None, None), vec!["OK cfg/a.json"]);
        assert_eq!(
            lines_for(p, Some("config a: x: bad\nconfig a: y: worse\n"), None),
            vec![
                "cfg/a.json: config a: x: bad",
                "cfg/a.json: config a: y: worse"
            ]
        );
        assert_eq!(
            lines_for(p, Some(""), None),
            vec!["cfg/a.json: invalid (the base gave no reason)"]
        );
    }

    #[test]
    fn warnings_come_first_and_leave_a_valid_file_ok() {
        let p = Path::new("cfg/a.json");
        assert_eq!(
            lines_for(p, None, Some("config a: field \"global.X\": odd\n")),
            vec![
                "cfg/a.json: warning: config a: field \"global.X\": odd",
                "OK cfg/a.json"
            ]
        );
        assert_eq!(
            lines_for(p, Some("config a: x: bad"), Some("config a: w")),
            vec![
                "cfg/a.json: warning: config a: w",
                "cfg/a.json: config a: x: bad"
            ]
        );
        assert_eq!(lines_for(p, None, Some("")), vec!["OK cfg/a.json"]);
    }
}
