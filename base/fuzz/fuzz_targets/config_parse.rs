//! `engine::registry::parse_config` on arbitrary text: it must never panic, and a rejected config
//! must come with at least one error naming the config.
#![no_main]

use libfuzzer_sys::fuzz_target;
use engine::registry;

fuzz_target!(|data: &[u8]| {
    // The ABI hands configs over as GoStrings; LoadConfig rejects invalid UTF-8 before parsing,
    // so lossy conversion explores the same parser with every input.
    let json = String::from_utf8_lossy(data);
    match registry::parse_config("fuzz", &json) {
        Ok(cfg) => {
            assert_eq!(cfg.name, "fuzz");
            for spec in cfg
                .inputs
                .iter()
                .chain(&cfg.processors)
                .chain(&cfg.aggregators)
                .chain(&cfg.flushers)
            {
                assert!(!spec.type_name.is_empty(), "accepted a plugin with no type");
                let _ = (spec.location(), spec.instance_name());
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "rejected with no error");
            for e in &errors {
                assert_eq!(e.config, "fuzz");
                assert!(!e.message.is_empty(), "empty error message: {e:?}");
                assert!(e.to_string().starts_with("config \"fuzz\""));
            }
        }
    }
});
