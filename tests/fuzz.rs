//! Fuzzing without a nightly toolchain: a mutation fuzzer over the two parsers that take hostile
//! input — the manifest parser and validator (`parse_documents`: pods, ConfigMaps, Secrets, Lists) and archive import
//! (`read_archive`). Seeds are the project's manifests and a built OCI archive; each round
//! mutates one (bit flips, byte and token insertions, deletions, splices, YAML-ish fragments) and
//! feeds it in. A panic, or an input that takes more than two seconds, fails the test with the
//! seed that reproduces it. `PODCTL_FUZZ_SECS` (default 30, split between the targets; CI runs
//! 60, `scripts/fuzz.sh` 600) and `PODCTL_FUZZ_SEED` set the run.

use std::time::{Duration, Instant};

/// xorshift64*: enough randomness for mutations, reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const FRAGMENTS: &[&str] = &[
    "\n",
    ": ",
    "- ",
    "  ",
    "{",
    "}",
    "[",
    "]",
    "'",
    "\"",
    "&a ",
    "*a",
    "!!binary ",
    "---\n",
    "...\n",
    "|\n  ",
    ">-\n",
    "null",
    "~",
    "true",
    "1e999",
    "-1",
    "0x",
    "\t",
    "#",
    "%YAML 1.2\n",
    "\u{feff}",
    "\\u0000",
    "65536",
    "containers:",
    "ports:",
    "hostPort: ",
    "image: ",
    "name: ",
    "kind: RuntimeClass",
    "apiVersion: v1",
    "command: [",
    "env: [{name: A, value: ",
    "resources: {limits: {memory: ",
    "9999999999999999999Ei",
];

fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut data = input.to_vec();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(data.len() + 1);
        match rng.below(7) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 => data.insert(at, rng.next() as u8),
            2 if !data.is_empty() => {
                let len = rng.below(32).min(data.len() - at.min(data.len()));
                data.drain(at.min(data.len())..at.min(data.len()) + len);
            }
            3 => {
                let fragment = FRAGMENTS[rng.below(FRAGMENTS.len())].as_bytes();
                data.splice(at..at, fragment.iter().copied());
            }
            4 => {
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let start = rng.below(other.len());
                    let len = rng.below(256).min(other.len() - start);
                    data.splice(at..at, other[start..start + len].iter().copied());
                }
            }
            5 if !data.is_empty() => {
                // Repeat a piece: deep nesting and long runs.
                let start = rng.below(data.len());
                let len = 1 + rng.below(16).min(data.len() - start - 1);
                let piece: Vec<u8> = data[start..start + len].to_vec();
                for _ in 0..rng.below(64) {
                    data.splice(at..at, piece.iter().copied());
                }
            }
            _ => {
                let i = rng.below(data.len() + 1);
                data.truncate(i);
            }
        }
    }
    data
}

fn budget() -> Duration {
    let secs: u64 = std::env::var("PODCTL_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs) / 2
}

fn seed() -> u64 {
    std::env::var("PODCTL_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
}

/// Feeds mutated seeds to `target` for the budget; returns how many inputs ran.
fn fuzz(name: &str, seeds: Vec<Vec<u8>>, target: impl Fn(&[u8])) -> u64 {
    let seed = seed();
    eprintln!("fuzz {name}: PODCTL_FUZZ_SEED={seed}");
    let mut rng = Rng(seed);
    let mut corpus = seeds;
    let deadline = Instant::now() + budget();
    let mut runs = 0u64;
    while Instant::now() < deadline {
        let pick = rng.below(corpus.len());
        let input = mutate(&mut rng, &corpus[pick], &corpus);
        let began = Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(&input)));
        let took = began.elapsed();
        if outcome.is_err() || took > Duration::from_secs(2) {
            let path = std::env::temp_dir().join(format!("podctl-fuzz-{name}-{seed}.bin"));
            std::fs::write(&path, &input).unwrap();
            panic!(
                "fuzz {name}: {} on input {} (PODCTL_FUZZ_SEED={seed}, after {runs} runs)",
                if outcome.is_err() { "panic" } else { "took over 2 s" },
                path.display()
            );
        }
        // Keep some inputs that still parse far enough to be interesting.
        if corpus.len() < 512 && rng.below(16) == 0 {
            corpus.push(input);
        }
        runs += 1;
    }
    eprintln!("fuzz {name}: {runs} inputs, no crash");
    runs
}

#[test]
fn the_manifest_parser_never_panics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(root.join("examples"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    seeds.push(b"apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: x}\nhandler: runc\n".to_vec());
    seeds.push(b"apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    image: i\n    ports: [{containerPort: 80, hostPort: 8080}]\n    env: [{name: X, value: '1'}]\n    resources: {limits: {memory: 64Mi, cpu: 500m}}\n    livenessProbe: {httpGet: {path: /, port: 80}}\n  volumes: [{name: v, emptyDir: {}}]\n".to_vec());
    let runs = fuzz("manifest", seeds, |input| {
        let _ = podctl::manifest::parse_documents(&String::from_utf8_lossy(input));
    });
    assert!(runs > 100, "the fuzzer ran");
}

#[test]
fn archive_import_never_panics() {
    use podctl::image::layout::{write_oci_archive, Entry, ImageSpec};
    let spec = ImageSpec {
        reference: "podctl.local/fuzz:1".into(),
        entrypoint: vec!["/x".into()],
        cmd: vec![],
        env: vec!["A=1".into()],
        working_dir: None,
        user: None,
        exposed_ports: vec!["80/tcp".into()],
        stop_signal: None,
        labels: Default::default(),
        architecture: None,
        os: None,
    };
    let mut archive = Vec::new();
    write_oci_archive(&spec, &[Entry::file("x", 0o755, &b"#!/bin/sh\n"[..])], &mut archive).unwrap();
    // Half the inputs are the archive with one file's content mutated and the tar rebuilt, so
    // the JSON inside (index, manifests, config) gets fuzzed, not only the tar headers.
    let files: Vec<(String, Vec<u8>)> = {
        let mut tar = tar::Archive::new(&archive[..]);
        tar.entries()
            .unwrap()
            .flatten()
            .map(|mut e| {
                let path = e.path().unwrap().to_string_lossy().into_owned();
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut data).unwrap();
                (path, data)
            })
            .collect()
    };
    let rng = std::cell::RefCell::new(Rng(seed() ^ 0x9E37_79B9_7F4A_7C15));
    let contents: Vec<Vec<u8>> = files.iter().map(|(_, d)| d.clone()).collect();
    let runs = fuzz("archive", vec![archive], |input| {
        let _ = podctl::image::archive::read_archive(input, None);
        let mut rng = rng.borrow_mut();
        let mut builder = tar::Builder::new(Vec::new());
        let victim = rng.below(files.len());
        for (i, (path, data)) in files.iter().enumerate() {
            let data = if i == victim {
                mutate(&mut rng, data, &contents)
            } else {
                data.clone()
            };
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, &data[..]).unwrap();
        }
        let rebuilt = builder.into_inner().unwrap();
        let _ = podctl::image::archive::read_archive(&rebuilt[..], None);
    });
    assert!(runs > 100, "the fuzzer ran");
}
