//! Reducing a timeline to what a picture can show: a few rows per pixel column, keeping each
//! column's first and last rows and the rows where a drawn value peaks or dips, so a one-row
//! spike stays visible. Files are streamed twice (time span, then columns), so a recording of
//! millions of rows costs the rows kept, not the rows read.

use std::path::Path;

use crate::timeline::{self, TimelineRow};

/// Columns per pixel of picture width: two, so a step edge lands within half a pixel.
pub const COLUMNS_PER_PIXEL: usize = 2;

/// The values the picture draws, whose extremes each column keeps.
fn drawn(r: &TimelineRow) -> [Option<f64>; 7] {
    [
        Some(f64::from(r.replicas_current)),
        Some(f64::from(r.replicas_desired)),
        r.metric_value,
        r.load,
        r.send_rate,
        r.p50_seconds,
        r.p99_seconds,
    ]
}

/// Rows of one column: first, last, and the lowest and highest row of each drawn value.
#[derive(Default)]
struct Column {
    first: Option<(usize, TimelineRow)>,
    last: Option<(usize, TimelineRow)>,
    low: [Option<(f64, usize, TimelineRow)>; 7],
    high: [Option<(f64, usize, TimelineRow)>; 7],
}

impl Column {
    fn add(&mut self, index: usize, row: &TimelineRow) {
        if self.first.is_none() {
            self.first = Some((index, row.clone()));
        }
        for (i, value) in drawn(row).into_iter().enumerate() {
            let Some(v) = value else {
                continue;
            };
            if self.low[i].as_ref().is_none_or(|(lo, _, _)| v < *lo) {
                self.low[i] = Some((v, index, row.clone()));
            }
            if self.high[i].as_ref().is_none_or(|(hi, _, _)| v > *hi) {
                self.high[i] = Some((v, index, row.clone()));
            }
        }
        self.last = Some((index, row.clone()));
    }

    /// The kept rows in file order, each once.
    fn flush(&mut self, out: &mut Vec<TimelineRow>) {
        let column = std::mem::take(self);
        let mut kept: Vec<(usize, TimelineRow)> = column
            .first
            .into_iter()
            .chain(column.last)
            .chain(
                column
                    .low
                    .into_iter()
                    .chain(column.high)
                    .flatten()
                    .map(|(_, i, r)| (i, r)),
            )
            .collect();
        kept.sort_by_key(|(i, _)| *i);
        kept.dedup_by_key(|(i, _)| *i);
        out.extend(kept.into_iter().map(|(_, r)| r));
    }
}

/// Reduces `rows` (in time order) to at most about `columns` columns over their time span.
pub fn downsample(
    rows: impl IntoIterator<Item = TimelineRow>,
    span: (f64, f64),
    columns: usize,
) -> Vec<TimelineRow> {
    let mut reducer = Reducer::new(span, columns);
    for row in rows {
        reducer.add(row);
    }
    reducer.finish()
}

/// Streams rows into columns.
struct Reducer {
    start: f64,
    width: f64,
    current: Option<i64>,
    column: Column,
    index: usize,
    out: Vec<TimelineRow>,
}

impl Reducer {
    fn new((start, end): (f64, f64), columns: usize) -> Self {
        let columns = columns.max(1) as f64;
        Self {
            start,
            width: ((end - start) / columns).max(f64::MIN_POSITIVE),
            current: None,
            column: Column::default(),
            index: 0,
            out: Vec::new(),
        }
    }

    fn add(&mut self, row: TimelineRow) {
        // `as` saturates: a row far outside the span only lands in an edge column.
        let column = ((row.t_seconds - self.start) / self.width).floor() as i64;
        if self.current != Some(column) {
            self.column.flush(&mut self.out);
            self.current = Some(column);
        }
        self.column.add(self.index, &row);
        self.index += 1;
    }

    fn finish(mut self) -> Vec<TimelineRow> {
        self.column.flush(&mut self.out);
        self.out
    }
}

/// Reads a timeline file reduced to `columns` columns: one pass for its time span, one to
/// reduce. A file of fewer rows than columns comes back whole.
pub fn read(path: &Path, columns: usize) -> anyhow::Result<Vec<TimelineRow>> {
    let (mut lo, mut hi, mut count) = (f64::INFINITY, f64::NEG_INFINITY, 0usize);
    timeline::for_each_row_in_file(path, |row| {
        lo = lo.min(row.t_seconds);
        hi = hi.max(row.t_seconds);
        count += 1;
        Ok(())
    })?;
    if count <= columns {
        return timeline::read_csv(path);
    }
    let mut reducer = Reducer::new((lo, hi), columns);
    timeline::for_each_row_in_file(path, |row| {
        reducer.add(row);
        Ok(())
    })?;
    Ok(reducer.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(t: f64, replicas: u32, metric: f64) -> TimelineRow {
        TimelineRow {
            t_seconds: t,
            replicas_current: replicas,
            replicas_desired: replicas,
            metric_value: Some(metric),
            ..TimelineRow::default()
        }
    }

    #[test]
    fn a_million_rows_become_a_few_per_column_and_keep_their_spikes() {
        let n = 1_000_000;
        let rows = (0..n).map(|i| {
            let t = i as f64 * 0.01;
            // One-row spikes: a replica and a metric peak in the middle, a dip near the end.
            match i {
                500_000 => row(t, 9, 1.0),
                700_000 => row(t, 2, 50.0),
                900_000 => row(t, 2, -3.0),
                _ => row(t, 2, 1.0),
            }
        });
        let kept = downsample(rows, (0.0, (n - 1) as f64 * 0.01), 2400);
        assert!(kept.len() <= 2400 * 16, "{} rows kept", kept.len());
        assert!(kept.len() >= 2400, "{} rows kept", kept.len());
        assert!(kept.iter().any(|r| r.replicas_current == 9));
        assert!(kept.iter().any(|r| r.metric_value == Some(50.0)));
        assert!(kept.iter().any(|r| r.metric_value == Some(-3.0)));
        assert_eq!(kept.first().map(|r| r.t_seconds), Some(0.0));
        assert_eq!(
            kept.last().map(|r| r.t_seconds),
            Some((n - 1) as f64 * 0.01)
        );
        assert!(kept.windows(2).all(|w| w[0].t_seconds <= w[1].t_seconds));
    }
}
