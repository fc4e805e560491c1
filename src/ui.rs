//! All status output of kscale: results on stdout, progress on stderr. No other module prints
//! (the tidy test enforces it), so the stdout/stderr rule and the JSON rule hold in one place.
//!
//! A TTY gets a spinner per step with its elapsed time and ✓/✗ when it ends; anything else gets
//! plain lines. With `--output json` stdout carries exactly one JSON document; a streaming
//! command (`metrics --watch`) writes NDJSON instead, one compact document per line.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Format of results on stdout (`--output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    Text,
    /// One JSON document (NDJSON for streaming commands).
    Json,
}

/// Reports a command's final error on stderr: the one message a failed run ends with. A free
/// function because it also reports errors that occur before a [`Ui`] exists.
pub fn error(e: &anyhow::Error) {
    eprintln!("error: {e:#}");
}

/// What JSON mode has written on stdout so far; decides how a failure is reported there.
static STDOUT_JSON: AtomicU8 = AtomicU8::new(NOTHING_YET);
const NOTHING_YET: u8 = 0;
const A_DOCUMENT: u8 = 1;
const NDJSON_LINES: u8 = 2;

/// With `--output json`, a failure is a JSON document too, so a script that parses stdout
/// learns why instead of failing on empty input: `{"error": {"message", "causes",
/// "exit_code"}}` as the one document, or as the last line of an NDJSON stream. Nothing is
/// added after a result document (stdout stays one document); stderr has the error either way.
pub fn error_json(e: &anyhow::Error, exit_code: u8) {
    let state = STDOUT_JSON.load(Ordering::SeqCst);
    if state == A_DOCUMENT {
        return;
    }
    let document = error_document(e, exit_code);
    let mut out = std::io::stdout().lock();
    let _ = if state == NDJSON_LINES {
        serde_json::to_writer(&mut out, &document)
    } else {
        serde_json::to_writer_pretty(&mut out, &document)
    };
    let _ = writeln!(out);
    let _ = out.flush();
}

/// The JSON form of a failure: the outermost message and the chain of causes under it.
fn error_document(e: &anyhow::Error, exit_code: u8) -> serde_json::Value {
    serde_json::json!({
        "error": {
            "message": e.to_string(),
            "causes": e.chain().skip(1).map(ToString::to_string).collect::<Vec<_>>(),
            "exit_code": exit_code,
        }
    })
}

/// A line on stderr outside any command (the interruption notice), for the same reason.
pub fn notice(line: &str) {
    eprintln!("{line}");
}

/// How output is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Spinners on a terminal.
    Interactive,
    /// One line per event (not a terminal).
    Plain,
    /// Results as JSON on stdout, progress as plain lines on stderr.
    Json,
    /// Nothing on stderr except errors (tests).
    Quiet,
}

/// The output layer; cheap to clone.
#[derive(Debug, Clone)]
pub struct Ui {
    mode: Mode,
    verbose: Arc<AtomicBool>,
    dry_run: Arc<AtomicBool>,
}

impl Ui {
    /// A UI in `mode`.
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            verbose: Arc::new(AtomicBool::new(false)),
            dry_run: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Interactive on a terminal, plain lines otherwise, JSON when asked.
    pub fn detect(format: OutputFormat) -> Self {
        let mode = if format == OutputFormat::Json {
            Mode::Json
        } else if std::io::stderr().is_terminal() {
            Mode::Interactive
        } else {
            Mode::Plain
        };
        Self::new(mode)
    }

    /// Echo external commands (`-v`).
    pub fn set_verbose(&self, on: bool) {
        self.verbose.store(on, Ordering::Relaxed);
    }

    /// Marks finished steps as planned, not done (`--dry-run`).
    pub fn set_dry_run(&self, on: bool) {
        self.dry_run.store(on, Ordering::Relaxed);
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether results go out as JSON.
    pub fn json(&self) -> bool {
        self.mode == Mode::Json
    }

    /// Starts a step; finish it with [`Step::done`] or [`Step::fail`].
    pub fn step(&self, title: &str) -> Step {
        let bar = if self.mode == Mode::Interactive {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(title.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            Some(bar)
        } else {
            if !matches!(self.mode, Mode::Quiet) {
                eprintln!("… {title}");
            }
            None
        };
        Step {
            ui: self.clone(),
            title: title.to_string(),
            started: Instant::now(),
            bar,
            finished: false,
        }
    }

    /// A progress line on stderr (kept clear of spinners).
    pub fn info(&self, line: &str) {
        if self.mode != Mode::Quiet {
            eprintln!("{line}");
        }
    }

    /// A warning on stderr.
    pub fn warn(&self, line: &str) {
        eprintln!("warning: {line}");
    }

    /// An external command echoed with `-v`.
    pub fn verbose(&self, line: &str) {
        if self.verbose.load(Ordering::Relaxed) {
            eprintln!("  {line}");
        }
    }

    /// One line of a dry-run plan. Progress, not a result: stderr, so that stdout keeps only
    /// the result (one JSON document with `--output json`).
    pub fn plan(&self, line: &str) {
        if self.mode != Mode::Quiet {
            eprintln!("{line}");
        }
    }

    /// Asks a yes/no question on stderr and reads the answer from stdin; `Ok(false)` unless
    /// the answer is yes. The caller checks first that stdin is a terminal.
    pub fn confirm(&self, question: &str) -> std::io::Result<bool> {
        eprint!("{question} [y/N] ");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES"))
    }

    /// A result for humans on stdout (ignored in JSON mode, which prints [`Ui::result_json`]).
    pub fn result(&self, text: &str) {
        if !matches!(self.mode, Mode::Json | Mode::Quiet) {
            println!("{text}");
        }
    }

    /// A result for humans on stdout exactly as given, without an added newline (a manifest
    /// stream, a CSV, a completion script); ignored in JSON mode like [`Ui::result`].
    pub fn result_raw(&self, text: &str) -> anyhow::Result<()> {
        if !matches!(self.mode, Mode::Json | Mode::Quiet) {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
        Ok(())
    }

    /// Output that is the result in every mode (`simulate --csv -`): the caller has made sure
    /// that nothing else goes to stdout.
    pub fn result_bytes(&self, data: &[u8]) -> anyhow::Result<()> {
        if self.mode != Mode::Quiet {
            let mut out = std::io::stdout().lock();
            out.write_all(data)?;
            out.flush()?;
        }
        Ok(())
    }

    /// One line of an NDJSON stream on stdout (JSON mode only): a compact document per line,
    /// flushed at once so a reader sees each as it comes.
    pub fn result_json_line(&self, value: &serde_json::Value) -> anyhow::Result<()> {
        if self.mode == Mode::Json {
            STDOUT_JSON.store(NDJSON_LINES, Ordering::SeqCst);
            let mut out = std::io::stdout().lock();
            serde_json::to_writer(&mut out, value)?;
            writeln!(out)?;
            out.flush()?;
        }
        Ok(())
    }

    /// The JSON result document on stdout (JSON mode only).
    pub fn result_json(&self, value: &serde_json::Value) {
        if self.mode == Mode::Json {
            STDOUT_JSON.store(A_DOCUMENT, Ordering::SeqCst);
            let mut out = std::io::stdout().lock();
            let _ = serde_json::to_writer_pretty(&mut out, value);
            let _ = writeln!(out);
        }
    }
}

/// Live progress of a long run (`kscale load`): a spinner line on a terminal, plain lines
/// at most every `plain_every` otherwise, nothing when `quiet`. Independent of [`Mode`]: `load`
/// shows it in JSON mode too (stdout still holds only the report).
pub fn live(quiet: bool, plain_every: Duration) -> Live {
    if quiet {
        return Live {
            bar: None,
            plain_every: None,
            last_plain: None,
        };
    }
    if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(200));
        Live {
            bar: Some(bar),
            plain_every: None,
            last_plain: None,
        }
    } else {
        Live {
            bar: None,
            plain_every: Some(plain_every),
            last_plain: None,
        }
    }
}

/// Live progress of a long run; see [`live`].
#[derive(Debug)]
pub struct Live {
    bar: Option<ProgressBar>,
    plain_every: Option<Duration>,
    last_plain: Option<Instant>,
}

impl Live {
    /// Replaces the progress line (plain output shows it only every so often).
    pub fn show(&mut self, line: String) {
        if let Some(bar) = &self.bar {
            bar.set_message(line);
        } else if let Some(every) = self.plain_every
            && self.last_plain.is_none_or(|t| t.elapsed() >= every)
        {
            eprintln!("{line}");
            self.last_plain = Some(Instant::now());
        }
    }

    /// A line that stays, printed above the spinner.
    pub fn note(&self, line: &str) {
        if let Some(bar) = &self.bar {
            bar.suspend(|| eprintln!("{line}"));
        } else if self.plain_every.is_some() {
            eprintln!("{line}");
        }
    }

    /// Clears the spinner.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A running step of a command.
#[derive(Debug)]
pub struct Step {
    ui: Ui,
    title: String,
    started: Instant,
    bar: Option<ProgressBar>,
    finished: bool,
}

impl Step {
    /// Updates the step's message (e.g. what it is waiting for).
    pub fn progress(&self, msg: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(format!("{}: {msg}", self.title)),
            None => self.ui.verbose(&format!("{}: {msg}", self.title)),
        }
    }

    /// Ends the step with ✓ and a short result.
    pub fn done(mut self, result: &str) {
        self.finish('✓', result);
    }

    /// Ends the step with ✗ and the reason.
    pub fn fail(mut self, reason: &str) {
        self.finish('✗', reason);
    }

    fn finish(&mut self, mark: char, text: &str) {
        self.finished = true;
        let secs = self.started.elapsed().as_secs_f64();
        let planned = if self.ui.dry_run.load(Ordering::Relaxed) {
            " [dry-run: planned, not done]"
        } else {
            ""
        };
        let text = format!("{text}{planned}");
        let line = if text.is_empty() {
            format!("{mark} {} ({secs:.1}s)", self.title)
        } else {
            format!("{mark} {}: {text} ({secs:.1}s)", self.title)
        };
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.ui.mode != Mode::Quiet || mark == '✗' {
            eprintln!("{line}");
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        // A step dropped without an outcome ended through an error path: say so.
        if !self.finished {
            self.finish('✗', "interrupted");
        }
    }
}
