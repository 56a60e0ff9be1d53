//! Replays every committed fuzz input (`fuzz/corpus/<target>/` and the
//! crash regressions in `fuzz/regressions/<target>/`) through the same entry
//! functions the `cargo fuzz` targets call (`gateway_core::fuzzing`), so CI
//! checks them on stable Rust without libFuzzer. See `fuzz/README.md`.

use std::path::{Path, PathBuf};

type Entry = fn(&[u8]);

const TARGETS: &[(&str, Entry)] = &[
    ("sse", gateway_core::fuzzing::sse),
    ("event_stream", gateway_core::fuzzing::event_stream),
    ("path", gateway_core::fuzzing::path),
    ("config", gateway_core::fuzzing::config),
    ("provider", gateway_core::fuzzing::provider),
    ("request", gateway_core::fuzzing::request),
    ("multipart", gateway_core::fuzzing::multipart),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(name: &str, entry: Entry) {
    let mut count = 0;
    for kind in ["corpus", "regressions"] {
        for file in inputs(&fuzz_dir().join(kind).join(name)) {
            let data = std::fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| entry(&data));
            assert!(outcome.is_ok(), "{} failed", file.display());
            count += 1;
        }
    }
    assert!(count > 0, "no committed inputs for fuzz target `{name}`");
}

#[test]
fn every_target_has_a_corpus_and_replays_it() {
    for (name, entry) in TARGETS {
        replay(name, *entry);
    }
}

/// Every fuzz target is listed above (a new target cannot go unreplayed).
#[test]
fn every_fuzz_target_is_replayed() {
    let targets = inputs(&fuzz_dir().join("fuzz_targets"));
    assert!(!targets.is_empty());
    for target in targets {
        let name = target.file_stem().unwrap().to_str().unwrap();
        assert!(
            TARGETS.iter().any(|(n, _)| *n == name),
            "fuzz target `{name}` has no replay in tests/tests/fuzz_corpora.rs"
        );
    }
}
