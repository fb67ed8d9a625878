//! host-harness: loads `libPluginAdapter.so` and `libPluginBase.so` exactly like an iLogtail
//! host does, and drives them: `run` configs and print what arrives, `validate` configs,
//! `bench` the processing path, measure the `footprint` of configs. See `host-harness --help`.

mod bench;
mod cli;
mod footprint;
mod host;
mod jsonlog;
mod libs;
mod nginx;
mod packs;
mod proto;
mod rng;
mod run;
mod stats;
mod validate;

use cli::Command;

fn main() {
    let code = match cli::parse(std::env::args().skip(1)) {
        Ok(Command::Help(text)) => {
            print!("{text}");
            0
        }
        Ok(Command::Version) => {
            println!("host-harness {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Ok(Command::Run(o)) => run::run(o),
        Ok(Command::Validate(o)) => validate::run(o),
        Ok(Command::Bench(o)) => bench::run(o),
        Ok(Command::Footprint(o)) => footprint::run(o),
        Err(e) => {
            eprintln!("{e}");
            2
        }
    };
    // Exit without unloading the libraries: base threads may still be running.
    std::process::exit(code);
}
