//! host-harness: loads `libPluginAdapter.so` and `libPluginBase.so` exactly like an iLogtail
//! host does, and drives them: `run` configs and print what arrives, `validate` configs,
//! `bench` the processing path (or, with `--file`, file collection), measure the `footprint`
//! of configs. See `host-harness --help`.

mod bench;
mod bench_buffer;
mod bench_file;
mod bench_scale;
mod cli;
mod fluentbit;
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
    let code = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(o)) => run::run(o),
        Ok(Command::Validate(o)) => validate::run(o),
        Ok(Command::Bench(o)) if o.file => bench_file::run(o),
        Ok(Command::Bench(o)) if o.buffer => bench_buffer::run(o),
        Ok(Command::Bench(o)) if o.scale_out => bench_scale::run(o),
        Ok(Command::Bench(o)) => bench::run(o),
        Ok(Command::BenchSink(o)) => bench_buffer::sink_main(o),
        Ok(Command::BenchKafkaBroker) => bench_scale::kafka_broker_main(),
        Ok(Command::Footprint(o)) => footprint::run(o),
        Ok(Command::FluentBit(o)) => fluentbit::run(o),
        // Help and version on stdout (exit code 0), usage errors on stderr (exit code 2).
        Err(e) => {
            let _ = e.print();
            e.exit_code()
        }
    };
    // Exit without unloading the libraries: base threads may still be running.
    std::process::exit(code);
}
