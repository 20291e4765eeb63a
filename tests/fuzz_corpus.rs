//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) and every crash input kept
//! as a regression (`fuzz/regressions/<target>/`) through the entry points the fuzz
//! targets call (`badger_relay::fuzzing`): no input may panic, and each property the
//! entry point checks (a round trip, a signature verified only with the right key, a
//! platform limit kept) must hold. Plain Rust on the stable toolchain, no libFuzzer.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use badger_relay::fuzzing::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir/<target>/`, for each target directory under `dir`, checked to be a
/// fuzz target's name.
fn inputs(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries {
        let target_dir = entry.unwrap().path();
        let name = target_dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            TARGETS.iter().any(|(t, _)| *t == name),
            "{} names no fuzz target (known: {:?})",
            target_dir.display(),
            TARGETS.iter().map(|(t, _)| t).collect::<Vec<_>>()
        );
        for file in fs::read_dir(&target_dir).unwrap() {
            let path = file.unwrap().path();
            if path.is_file() {
                out.push((name.clone(), path));
            }
        }
    }
    out.sort();
    out
}

/// Runs every input; reports all failures at once, by file.
fn replay(inputs: &[(String, PathBuf)]) {
    let mut failures = Vec::new();
    for (target, path) in inputs {
        let run = TARGETS.iter().find(|(t, _)| t == target).unwrap().1;
        let data = fs::read(path).unwrap();
        if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
            failures.push(path.display().to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "{} input(s) failed (the panic messages are above):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_corpus_and_every_crash_input_replay_cleanly() {
    let corpus = fuzz_dir().join("corpus");
    let mut all = inputs(&corpus);
    for (target, _) in TARGETS {
        let n = all.iter().filter(|(t, _)| t == target).count();
        assert!(
            n > 0,
            "no corpus for the fuzz target `{target}` under {}: the corpus must be committed",
            corpus.display()
        );
    }
    // A target with no crash found yet has no regressions directory; one that exists
    // holds at least one input.
    let regressions = fuzz_dir().join("regressions");
    let kept = inputs(&regressions);
    if let Ok(entries) = fs::read_dir(&regressions) {
        for entry in entries {
            let path = entry.unwrap().path();
            assert!(
                kept.iter().any(|(_, p)| p.starts_with(&path)),
                "{} is empty",
                path.display()
            );
        }
    }
    all.extend(kept);
    replay(&all);
}
