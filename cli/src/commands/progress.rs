//! The build's progress on a terminal (indicatif): the current step, files
//! and bytes written; drawn only once a build has taken a second, on
//! stderr, and only when stdout is a terminal (nothing when piped).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mkrootfs::progress::{Reporter, Step};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A build's display; [`Display::finish`] clears it.
pub struct Display {
    shared: Arc<Shared>,
}

impl Display {
    pub fn finish(&self) {
        if let Ok(mut shown) = self.shared.shown.lock() {
            // Never drawn from now on.
            *shown = true;
        }
        self.shared.bar.finish_and_clear();
    }
}

struct Shared {
    bar: ProgressBar,
    shown: Mutex<bool>,
    step: Mutex<String>,
    files: AtomicU64,
    bytes: AtomicU64,
}

impl Shared {
    fn refresh(&self) {
        let step = self.step.lock().map(|s| s.clone()).unwrap_or_default();
        self.bar.set_message(format!(
            "{step}: {} files, {}",
            self.files.load(Ordering::Relaxed),
            indicatif::HumanBytes(self.bytes.load(Ordering::Relaxed))
        ));
    }

    /// Starts drawing, unless the build already finished.
    fn show(&self) {
        if let Ok(mut shown) = self.shown.lock() {
            if !*shown {
                *shown = true;
                self.bar.set_draw_target(ProgressDrawTarget::stderr());
                self.bar.enable_steady_tick(Duration::from_millis(120));
            }
        }
    }
}

struct Forward(Arc<Shared>);

impl Reporter for Forward {
    fn step(&self, step: Step) {
        if let Ok(mut s) = self.0.step.lock() {
            *s = step.to_string();
        }
        self.0.refresh();
    }

    fn advance(&self, files: u64, bytes: u64) {
        self.0.files.fetch_add(files, Ordering::Relaxed);
        self.0.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.0.refresh();
    }
}

/// Installs the display when stdout and stderr are terminals.
pub fn install() -> Option<Display> {
    if !std::io::stdout().is_terminal() || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let shared = Arc::new(Shared {
        bar,
        shown: Mutex::new(false),
        step: Mutex::new(String::new()),
        files: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    });
    mkrootfs::progress::set_reporter(Box::new(Forward(shared.clone())));
    // Only builds over about a second show anything.
    let later = shared.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        later.show();
    });
    Some(Display { shared })
}
