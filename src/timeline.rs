//! The autoscaling timeline: one row per observation, shared by `kscale metrics --watch --record`,
//! `kscale load --record`, `kscale simulate` and `kscale plot`.
//!
//! On disk a timeline is a CSV file with a header row. Columns are found by name, so a file may
//! leave columns out (they take their defaults) or carry columns this version does not know
//! (they are ignored); only `t_seconds` is required. An empty cell is "not known". Per-pod samples
//! share one `pods` cell: `name:queue_depth:in_flight` entries separated by `;`.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek as _, SeekFrom, Write};
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// One observation of the autoscaling loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TimelineRow {
    /// Seconds since the start of the recording.
    pub t_seconds: f64,
    /// Replicas the Deployment has (`status.currentReplicas` of the HPA).
    pub replicas_current: u32,
    /// Replicas the HPA wants (`status.desiredReplicas`).
    pub replicas_desired: u32,
    /// The metric as the HPA sees it; `None` when it could not be read.
    pub metric_value: Option<f64>,
    /// The HPA's target for the metric.
    pub target: f64,
    /// Offered load at this time (concurrent clients or requests/s), when known.
    pub load: Option<f64>,
    /// Requests waiting for a worker, summed over pods.
    pub queue_depth: Option<f64>,
    /// Requests in inference, summed over pods.
    pub in_flight: Option<f64>,
    /// Median latency of requests finished since the previous row, in seconds.
    pub p50_seconds: Option<f64>,
    /// 99th percentile latency of requests finished since the previous row, in seconds.
    pub p99_seconds: Option<f64>,
    /// Requests shed (503) since the previous row.
    pub shed: Option<u64>,
    /// Per-pod `(name, queue depth, in flight)`.
    #[serde(default)]
    pub pods: Vec<PodSample>,
    /// Wall-clock time of the row (seconds since the Unix epoch), so that timelines recorded by
    /// different processes (`kscale metrics` and `kscale load`) can be put on one time axis.
    #[serde(default)]
    pub unix_seconds: Option<f64>,
    /// Requests the load generator started per second since the previous row.
    #[serde(default)]
    pub send_rate: Option<f64>,
    /// Requests answered with a 2xx status since the previous row.
    #[serde(default)]
    pub ok: Option<u64>,
    /// Requests that failed for another reason than a 503 since the previous row (refused,
    /// timeout, other statuses, broken connections).
    #[serde(default)]
    pub errors: Option<u64>,
}

/// Queue depth and in-flight requests of one pod at one time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PodSample {
    /// Pod name.
    pub pod: String,
    /// Requests waiting.
    pub queue_depth: f64,
    /// Requests in inference.
    pub in_flight: f64,
}

/// Seconds since the Unix epoch, for the wall-clock column that aligns files recorded at the
/// same time (`None` on a clock before 1970).
pub fn unix_now() -> Option<f64> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64())
}

/// The CSV columns, in the order they are written.
pub const CSV_COLUMNS: &[&str] = &[
    "t_seconds",
    "unix_seconds",
    "replicas_current",
    "replicas_desired",
    "metric_value",
    "target",
    "load",
    "queue_depth",
    "in_flight",
    "p50_seconds",
    "p99_seconds",
    "shed",
    "send_rate",
    "ok",
    "errors",
    "pods",
];

/// The header line of a timeline CSV file (without the newline).
pub fn csv_header() -> String {
    CSV_COLUMNS.join(",")
}

/// A number with at most 6 decimals (microseconds for times), without trailing zeros.
fn num(x: f64) -> String {
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

fn opt_f64(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite()).map(num).unwrap_or_default()
}

fn opt_u64(v: Option<u64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// A pod name as it may appear in the `pods` cell: that cell's own separators (`;`, `:`) are
/// replaced, since CSV quoting protects the cell but not the list inside it.
fn clean_name(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            ',' | ';' | ':' | '\n' | '\r' | '"' => '_',
            c => c,
        })
        .collect()
}

/// One row's cells, in [`CSV_COLUMNS`] order.
fn cells(row: &TimelineRow) -> [String; 16] {
    let mut pods = String::new();
    for (i, p) in row.pods.iter().enumerate() {
        if i > 0 {
            pods.push(';');
        }
        let _ = write!(
            pods,
            "{}:{}:{}",
            clean_name(&p.pod),
            num(p.queue_depth),
            num(p.in_flight)
        );
    }
    [
        num(row.t_seconds),
        opt_f64(row.unix_seconds),
        row.replicas_current.to_string(),
        row.replicas_desired.to_string(),
        opt_f64(row.metric_value),
        num(row.target),
        opt_f64(row.load),
        opt_f64(row.queue_depth),
        opt_f64(row.in_flight),
        opt_f64(row.p50_seconds),
        opt_f64(row.p99_seconds),
        opt_u64(row.shed),
        opt_f64(row.send_rate),
        opt_u64(row.ok),
        opt_u64(row.errors),
        pods,
    ]
}

/// The one writer of timeline CSV (the `csv` crate underneath): rows one at a time, each flushed
/// so that a recording interrupted by Ctrl-C keeps every row written so far. A labelled writer
/// puts a `run` column first, for files holding several runs (`kscale simulate --csv`); readers
/// ignore that column, as any column they do not know.
#[derive(Debug)]
pub struct TimelineWriter<W: Write = File> {
    csv: csv::Writer<W>,
    /// What is written to, for error messages.
    what: String,
    /// The `run` cell of the next rows, for a labelled writer.
    run: Option<String>,
}

impl TimelineWriter<File> {
    /// Creates (or truncates) `path` and writes the header.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file = File::create(path)
            .with_context(|| format!("cannot create timeline file {}", path.display()))?;
        Self::start(file, timeline_file(path), true, None)
    }

    /// Opens `path` for appending rows, writing the header when the file is new or empty. An
    /// existing file must have this version's header, else rows would land under other columns.
    pub fn append_to(path: &Path) -> anyhow::Result<Self> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open timeline file {} to append", path.display()))?;
        let mut existing = String::new();
        file.seek(SeekFrom::Start(0))
            .and_then(|_| (&mut file).take(4096).read_to_string(&mut existing))
            .with_context(|| format!("cannot read timeline file {}", path.display()))?;
        if !existing.is_empty() {
            let first = existing.lines().next().unwrap_or_default().trim_end();
            if first != csv_header() {
                anyhow::bail!(
                    "{} is not a timeline file of this kscale version (its header is `{first}`); \
                     record to a new file",
                    path.display()
                );
            }
            let mut last = [0u8; 1];
            file.seek(SeekFrom::End(-1))
                .and_then(|_| file.read_exact(&mut last))
                .with_context(|| format!("cannot read timeline file {}", path.display()))?;
            if last[0] != b'\n' {
                // A previous writer was cut mid-line: start on a fresh line so that only that
                // one row is damaged.
                writeln!(file).with_context(|| format!("cannot write to {}", path.display()))?;
            }
        }
        Self::start(file, timeline_file(path), existing.is_empty(), None)
    }
}

impl<W: Write> TimelineWriter<W> {
    /// A writer with a leading `run` column to `out` (described as `what` in errors); the header
    /// is written at once, and [`TimelineWriter::set_run`] names the run of the rows that follow.
    pub fn labelled(out: W, what: &str) -> anyhow::Result<Self> {
        Self::start(out, what.to_owned(), true, Some(String::new()))
    }

    fn start(out: W, what: String, header: bool, run: Option<String>) -> anyhow::Result<Self> {
        let csv = csv::WriterBuilder::new()
            .has_headers(false)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(out);
        let mut w = Self { csv, what, run };
        if header {
            let run_column = w.run.as_ref().map(|_| "run");
            w.write(run_column.into_iter().chain(CSV_COLUMNS.iter().copied()))?;
        }
        Ok(w)
    }

    /// Names the run of the rows that follow (labelled writers only; others have no `run` column).
    pub fn set_run(&mut self, label: &str) {
        if let Some(run) = self.run.as_mut() {
            label.clone_into(run);
        }
    }

    /// Appends one row and flushes it.
    pub fn append(&mut self, row: &TimelineRow) -> anyhow::Result<()> {
        let run = self.run.clone();
        let cells = cells(row);
        self.write(
            run.iter()
                .map(String::as_str)
                .chain(cells.iter().map(String::as_str)),
        )
    }

    /// Flushes and hands back the output.
    pub fn into_inner(self) -> anyhow::Result<W> {
        let what = self.what;
        self.csv
            .into_inner()
            .map_err(|e| anyhow::anyhow!("cannot write to {what}: {}", e.error()))
    }

    fn write<'a>(&mut self, record: impl IntoIterator<Item = &'a str>) -> anyhow::Result<()> {
        self.csv
            .write_record(record)
            .map_err(anyhow::Error::from)
            .and_then(|()| Ok(self.csv.flush()?))
            .with_context(|| format!("cannot write to {}", self.what))
    }
}

fn timeline_file(path: &Path) -> String {
    format!("timeline file {}", path.display())
}

/// Reads a timeline CSV file. Errors name the file, the line (counting from 1, the header
/// included) and the column.
pub fn read_csv(path: &Path) -> anyhow::Result<Vec<TimelineRow>> {
    let mut rows = Vec::new();
    for_each_row_in_file(path, |row| {
        rows.push(row);
        Ok(())
    })?;
    Ok(rows)
}

/// Streams the rows of a timeline file to `f`, holding one line at a time (a recording can
/// have millions of rows).
pub fn for_each_row_in_file(
    path: &Path,
    f: impl FnMut(TimelineRow) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let file = File::open(path)
        .with_context(|| format!("cannot open timeline file {}", path.display()))?;
    // Unbuffered: the csv reader buffers itself.
    for_each_row(file, f).with_context(|| format!("invalid timeline file {}", path.display()))
}

/// Parses timeline CSV text (see the module documentation for the format).
pub fn parse_csv(text: &str) -> anyhow::Result<Vec<TimelineRow>> {
    let mut rows = Vec::new();
    for_each_row(text.as_bytes(), |row| {
        rows.push(row);
        Ok(())
    })?;
    Ok(rows)
}

/// Parses timeline CSV from `reader`, handing each row to `f` as it is read. The `csv` crate
/// reads what [`TimelineWriter`] (and a spreadsheet) writes, quoted cells included.
fn for_each_row(
    reader: impl Read,
    mut f: impl FnMut(TimelineRow) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    // The header is read by hand (has_headers off) so that errors count it as line 1, and the
    // field count is checked here (flexible on) so the message names both lines.
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(LineCounter::new(reader));
    let mut record = csv::StringRecord::new();
    let Some(header_line) = next_record(&mut csv, &mut record)? else {
        anyhow::bail!(
            "line 1: the file is empty; expected a header `{}`",
            csv_header()
        );
    };
    let names: Vec<String> = record.iter().map(str::to_owned).collect();
    if !names.iter().any(|n| n == "t_seconds") {
        anyhow::bail!(
            "line {header_line}: the header has no `t_seconds` column (found `{}`); \
             expected `{}`",
            names.join(","),
            csv_header()
        );
    }
    while let Some(number) = next_record(&mut csv, &mut record)? {
        if record.len() != names.len() {
            anyhow::bail!(
                "line {number}: {} fields, but the header (line {header_line}) has {}",
                record.len(),
                names.len()
            );
        }
        let mut row = TimelineRow::default();
        for (name, cell) in names.iter().zip(record.iter()) {
            set_field(&mut row, name, cell)
                .with_context(|| format!("line {number}: column `{name}`"))?;
        }
        f(row)?;
    }
    Ok(())
}

/// Reads the next record that is not blank; returns its line.
fn next_record<R: Read>(
    csv: &mut csv::Reader<LineCounter<R>>,
    record: &mut csv::StringRecord,
) -> anyhow::Result<Option<u64>> {
    loop {
        let more = csv.read_record(record).map_err(|e| match e.position() {
            Some(at) => anyhow::anyhow!("line {}: {e}", csv.get_mut().line_at(at.byte())),
            // An I/O error has no place in the text.
            None => anyhow::Error::new(e),
        })?;
        if !more {
            return Ok(None);
        }
        // A blank line (one empty field after trimming); `,,,` is a row, with its errors.
        if !(record.len() == 1 && record[0].is_empty()) {
            let byte = record.position().map_or(0, csv::Position::byte);
            return Ok(Some(csv.get_mut().line_at(byte)));
        }
    }
}

/// Counts lines under the `csv` reader, whose own count skips blank lines; error messages name
/// the line as an editor shows it.
struct LineCounter<R> {
    inner: R,
    read: u64,
    /// Newlines read ahead of the last record asked about (bounded by csv's buffer): offset, and
    /// whether it ends an empty line (which csv skips, starting the next record's position there).
    ahead: std::collections::VecDeque<(u64, bool)>,
    passed: u64,
    /// The last byte read that was not `\r`.
    last: u8,
}

impl<R> LineCounter<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            read: 0,
            ahead: std::collections::VecDeque::new(),
            passed: 0,
            last: b'\n',
        }
    }

    /// The line (from 1) of the record csv placed at `byte`; asked with offsets that never go
    /// back. A record never starts with a newline, so one at `byte` ends an earlier line (csv
    /// places a record after CRLF at its LF).
    fn line_at(&mut self, byte: u64) -> u64 {
        while self.ahead.front().is_some_and(|&(at, _)| at <= byte) {
            self.ahead.pop_front();
            self.passed += 1;
        }
        // Empty lines right at `byte` were skipped on the way to the record.
        while self.ahead.front().is_some_and(|&(_, empty)| empty) {
            self.ahead.pop_front();
            self.passed += 1;
        }
        self.passed + 1
    }
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (i, &b) in buf[..n].iter().enumerate() {
            if b == b'\n' {
                self.ahead
                    .push_back((self.read + i as u64, self.last == b'\n'));
            }
            if b != b'\r' {
                self.last = b;
            }
        }
        self.read += n as u64;
        Ok(n)
    }
}

fn parse_f64(cell: &str) -> anyhow::Result<Option<f64>> {
    if cell.is_empty() {
        return Ok(None);
    }
    let v: f64 = cell
        .parse()
        .map_err(|_| anyhow::anyhow!("`{cell}` is not a number"))?;
    if !v.is_finite() {
        return Ok(None);
    }
    Ok(Some(v))
}

fn parse_u64(cell: &str) -> anyhow::Result<Option<u64>> {
    if cell.is_empty() {
        return Ok(None);
    }
    cell.parse()
        .map(Some)
        .map_err(|_| anyhow::anyhow!("`{cell}` is not a whole number"))
}

fn parse_u32(cell: &str) -> anyhow::Result<u32> {
    Ok(match parse_u64(cell)? {
        None => 0,
        Some(v) => u32::try_from(v).map_err(|_| anyhow::anyhow!("`{cell}` is too large"))?,
    })
}

fn parse_pods(cell: &str) -> anyhow::Result<Vec<PodSample>> {
    let mut pods = Vec::new();
    for entry in cell.split(';').filter(|e| !e.is_empty()) {
        let mut parts = entry.rsplitn(3, ':');
        let (Some(in_flight), Some(queue), Some(pod)) = (parts.next(), parts.next(), parts.next())
        else {
            anyhow::bail!("`{entry}` is not `pod:queue_depth:in_flight`");
        };
        let num = |s: &str| -> anyhow::Result<f64> {
            s.parse()
                .map_err(|_| anyhow::anyhow!("`{entry}`: `{s}` is not a number"))
        };
        pods.push(PodSample {
            pod: pod.to_owned(),
            queue_depth: num(queue)?,
            in_flight: num(in_flight)?,
        });
    }
    Ok(pods)
}

fn set_field(row: &mut TimelineRow, name: &str, cell: &str) -> anyhow::Result<()> {
    match name {
        "t_seconds" => {
            row.t_seconds =
                parse_f64(cell)?.ok_or_else(|| anyhow::anyhow!("the time must be given"))?;
        }
        "unix_seconds" => row.unix_seconds = parse_f64(cell)?,
        "replicas_current" => row.replicas_current = parse_u32(cell)?,
        "replicas_desired" => row.replicas_desired = parse_u32(cell)?,
        "metric_value" => row.metric_value = parse_f64(cell)?,
        "target" => row.target = parse_f64(cell)?.unwrap_or(0.0),
        "load" => row.load = parse_f64(cell)?,
        "queue_depth" => row.queue_depth = parse_f64(cell)?,
        "in_flight" => row.in_flight = parse_f64(cell)?,
        "p50_seconds" => row.p50_seconds = parse_f64(cell)?,
        "p99_seconds" => row.p99_seconds = parse_f64(cell)?,
        "shed" => row.shed = parse_u64(cell)?,
        "send_rate" => row.send_rate = parse_f64(cell)?,
        "ok" => row.ok = parse_u64(cell)?,
        "errors" => row.errors = parse_u64(cell)?,
        "pods" => row.pods = parse_pods(cell)?,
        // Columns of a newer version: keep reading what this version understands.
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<TimelineRow> {
        vec![
            TimelineRow {
                t_seconds: 0.0,
                unix_seconds: Some(1_800_000_000.5),
                replicas_current: 1,
                replicas_desired: 2,
                metric_value: Some(14.25),
                target: 12.0,
                load: Some(4.0),
                queue_depth: Some(3.0),
                in_flight: Some(1.0),
                pods: vec![PodSample {
                    pod: "inference-7d9f-abc".into(),
                    queue_depth: 3.0,
                    in_flight: 1.0,
                }],
                ..Default::default()
            },
            TimelineRow {
                t_seconds: 5.5,
                replicas_current: 2,
                replicas_desired: 2,
                metric_value: None,
                target: 12.0,
                p50_seconds: Some(10.0),
                p99_seconds: Some(21.0),
                shed: Some(2),
                send_rate: Some(0.8),
                ok: Some(4),
                errors: Some(0),
                pods: vec![
                    PodSample {
                        pod: "a".into(),
                        queue_depth: 0.0,
                        in_flight: 1.0,
                    },
                    PodSample {
                        pod: "b".into(),
                        queue_depth: 2.0,
                        in_flight: 1.0,
                    },
                ],
                ..Default::default()
            },
        ]
    }

    #[test]
    fn round_trips_through_csv() {
        let rows = sample();
        let mut w = TimelineWriter::start(Vec::new(), "memory".into(), true, None).unwrap();
        for r in &rows {
            w.append(r).unwrap();
        }
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert!(text.starts_with(&format!("{}\n", csv_header())), "{text}");
        assert_eq!(parse_csv(&text).unwrap(), rows);
    }

    #[test]
    fn a_labelled_writer_puts_the_run_first_and_readers_skip_it() {
        let rows = sample();
        let mut w = TimelineWriter::labelled(Vec::new(), "memory").unwrap();
        w.set_run("a, \"b\"");
        w.append(&rows[0]).unwrap();
        w.set_run("c");
        w.append(&rows[1]).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], format!("run,{}", csv_header()));
        assert!(lines[1].starts_with(r#""a, ""b""","#), "{}", lines[1]);
        assert!(lines[2].starts_with("c,"), "{}", lines[2]);
        assert_eq!(parse_csv(&text).unwrap(), rows[..2]);
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(num(1.001580436), "1.00158");
        assert_eq!(num(1795810785.455492), "1795810785.455492");
        assert_eq!(num(12.0), "12");
        assert_eq!(num(0.0), "0");
    }

    #[test]
    fn columns_are_found_by_name_and_missing_ones_default() {
        let rows = parse_csv("load,t_seconds,future_column\n3,1.5,x\n").unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].t_seconds, 1.5);
        assert_eq!(rows[0].load, Some(3.0));
        assert_eq!(rows[0].replicas_current, 0);
    }

    #[test]
    fn reads_the_subset_that_metrics_watch_records() {
        // The header `kscale metrics --watch --record` wrote first (no wall clock, no pods).
        let text = "t_seconds,replicas_current,replicas_desired,metric_value,target,load,\
                    queue_depth,in_flight,p50_seconds,p99_seconds,shed\n\
                    0,1,2,13.5,12,,3,1,,,\n5.2,2,2,,12,,0,2,,,\n";
        let rows = parse_csv(text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].replicas_desired, 2);
        assert_eq!(rows[0].metric_value, Some(13.5));
        assert_eq!(rows[1].metric_value, None);
        assert_eq!(rows[1].in_flight, Some(2.0));
        assert_eq!(rows[1].unix_seconds, None);
    }

    #[test]
    fn malformed_cells_name_line_and_column() {
        let err = parse_csv("t_seconds,replicas_current\n0,1\n\n5,two\n").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("line 4"), "{msg}");
        assert!(msg.contains("replicas_current"), "{msg}");
        assert!(msg.contains("`two`"), "{msg}");
    }

    #[test]
    fn wrong_field_count_names_the_line() {
        let msg = format!("{:#}", parse_csv("t_seconds,load\n0,1\n1\n").unwrap_err());
        assert!(msg.contains("line 3") && msg.contains("1 fields"), "{msg}");
    }

    #[test]
    fn quoted_cells_as_a_spreadsheet_saves_them_are_read() {
        let text = "\"t_seconds\",\"load\"\r\n\r\n\"1.5\",\"3\"\r\n\"x\",1\r\n";
        let msg = format!("{:#}", parse_csv(text).unwrap_err());
        assert!(msg.contains("line 4") && msg.contains("`x`"), "{msg}");
        let msg = format!(
            "{:#}",
            parse_csv("\n\nt_seconds\n\n\n1\n  \nx\n").unwrap_err()
        );
        assert!(msg.contains("line 8") && msg.contains("`x`"), "{msg}");
        // A row of empty cells is not a blank line: it is read, and its missing time named.
        let msg = format!("{:#}", parse_csv("t_seconds,load\n,\n").unwrap_err());
        assert!(
            msg.contains("line 2") && msg.contains("time must be given"),
            "{msg}"
        );
        let rows = parse_csv(&text.replace("\"x\"", "2")).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].t_seconds, rows[0].load), (1.5, Some(3.0)));
    }

    #[test]
    fn a_header_without_time_is_refused() {
        let msg = format!("{:#}", parse_csv("a,b\n1,2\n").unwrap_err());
        assert!(msg.contains("line 1") && msg.contains("t_seconds"), "{msg}");
        assert!(parse_csv("").is_err());
    }

    #[test]
    fn appending_keeps_one_header_and_refuses_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let rows = sample();
        TimelineWriter::append_to(&path)
            .unwrap()
            .append(&rows[0])
            .unwrap();
        TimelineWriter::append_to(&path)
            .unwrap()
            .append(&rows[1])
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("t_seconds").count(), 1, "{text}");
        assert_eq!(read_csv(&path).unwrap(), rows);

        let other = dir.path().join("other.csv");
        std::fs::write(&other, "a,b\n").unwrap();
        let msg = format!("{:#}", TimelineWriter::append_to(&other).unwrap_err());
        assert!(msg.contains("not a timeline file"), "{msg}");
    }
}
