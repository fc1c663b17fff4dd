//! How a pull shows its progress: a bar per layer (bytes, speed) on a terminal, one line per
//! event otherwise (logs, CI), nothing with `-q`. Everything goes to stderr; stdout keeps results.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::image::pull_events::{short_digest, Silent};
use crate::image::{Progress, PullEvent};

pub fn for_stderr(quiet: bool) -> Arc<dyn Progress> {
    if quiet {
        Arc::new(Silent)
    } else if std::io::stderr().is_terminal() {
        Arc::new(Bars::new())
    } else {
        Arc::new(Lines)
    }
}

pub fn size(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}

/// One line per event, for logs and pipes.
pub struct Lines;

impl Progress for Lines {
    fn event(&self, event: PullEvent) {
        let line = match event {
            PullEvent::Resolved { image, digest, url } => format!("{image}: resolved to {digest} at {url}"),
            PullEvent::EndpointFailed { url, cause } => format!("{url}: {cause}"),
            PullEvent::BlobStart {
                digest,
                size: total,
                from,
            } if from > 0 => format!(
                "{}: resuming at {} of {}",
                short_digest(&digest),
                size(from),
                size(total)
            ),
            PullEvent::BlobStart {
                digest, size: total, ..
            } => {
                format!("{}: downloading {}", short_digest(&digest), size(total))
            }
            PullEvent::BlobProgress { .. } => return,
            PullEvent::BlobDone {
                digest,
                fetched,
                elapsed,
                ..
            } => format!(
                "{}: done, {} fetched in {:.1}s",
                short_digest(&digest),
                size(fetched),
                elapsed.as_secs_f64()
            ),
            PullEvent::BlobPresent { digest, .. } => format!("{}: already present", short_digest(&digest)),
            PullEvent::BlobRetry { digest, at, cause } => format!(
                "{}: broke off at {} ({cause}); resuming",
                short_digest(&digest),
                size(at)
            ),
            PullEvent::Unpacked { digest, by } => format!("{}: {}", short_digest(&digest), by.message()),
            PullEvent::Done {
                image,
                digest,
                fetched,
                elapsed,
            } => format!(
                "{image}: pulled {digest}, {} fetched in {:.1}s",
                size(fetched),
                elapsed.as_secs_f64()
            ),
        };
        eprintln!("{line}");
    }
}

/// indicatif bars, one per blob, under one MultiProgress.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    fn new() -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn bar(&self, digest: &str) -> Option<ProgressBar> {
        self.bars.lock().expect("not poisoned").get(digest).cloned()
    }
}

impl Progress for Bars {
    fn event(&self, event: PullEvent) {
        match event {
            PullEvent::BlobStart { digest, size, from } => {
                let bar = self.multi.add(ProgressBar::new(size));
                bar.set_style(
                    ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}")
                        .expect("the template is valid")
                        .progress_chars("=> "),
                );
                bar.set_prefix(short_digest(&digest).to_string());
                bar.set_position(from);
                if from > 0 {
                    bar.set_message("resumed");
                }
                self.bars.lock().expect("not poisoned").insert(digest, bar);
            }
            PullEvent::BlobProgress { digest, done } => {
                if let Some(bar) = self.bar(&digest) {
                    bar.set_position(done);
                }
            }
            PullEvent::BlobDone { digest, .. } => {
                if let Some(bar) = self.bar(&digest) {
                    bar.set_message("done");
                }
            }
            PullEvent::BlobRetry { digest, .. } => {
                if let Some(bar) = self.bar(&digest) {
                    bar.set_message("retrying");
                }
            }
            PullEvent::Unpacked { digest, by } => match self.bar(&digest) {
                Some(bar) => bar.finish_with_message(by.message()),
                None => {
                    let _ = self
                        .multi
                        .println(format!("{}: {}", short_digest(&digest), by.message()));
                }
            },
            PullEvent::BlobPresent { digest, .. } => {
                let _ = self
                    .multi
                    .println(format!("{}: already present", short_digest(&digest)));
            }
            PullEvent::Done { .. } => {
                for bar in self.bars.lock().expect("not poisoned").values() {
                    if !bar.is_finished() {
                        bar.finish();
                    }
                }
                Lines.event(event);
            }
            other => {
                self.multi.suspend(|| Lines.event(other));
            }
        }
    }
}
