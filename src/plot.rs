//! Pictures of autoscaling timelines (`kscale plot`, `kscale simulate --plot`).
//!
//! Two stacked panels on one time axis: replicas (current and desired, as step lines) with the
//! offered load on a second axis, and the HPA metric against its target. A timeline that carries
//! only load (from `kscale load --record`) adds its load to the first panel; when no timeline
//! carries autoscaler data, the picture shows the load side alone (send rate and latencies).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::Context as _;
use plotters::chart::MeshStyle;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use crate::cli::PlotArgs;
use crate::downsample;
use crate::timeline::TimelineRow;

/// DejaVu Sans (see `assets/fonts/LICENSE-DejaVu.txt`): PNG text needs font data, and embedding it
/// keeps the picture the same on every machine.
static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

static REGISTER: Once = Once::new();

/// Registers the embedded font with plotters; idempotent, and called by every plot function.
pub fn register_fonts() {
    REGISTER.call_once(|| {
        // The font is a compile-time constant checked by the tests, so this cannot fail at run
        // time; should it, text is left out rather than the picture.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Runs `kscale plot`: reads every file, draws them, and returns the path written. `profile`
/// (the configured metric profile) names the metric axis unless `--metric-label` does.
pub fn run(args: &PlotArgs, profile: crate::config::MetricProfile) -> anyhow::Result<PathBuf> {
    let mut loaded = Vec::with_capacity(args.files.len());
    for path in &args.files {
        // Reduced while reading: a picture shows at most a few rows per pixel column.
        // The files are the user's input: an unreadable one is exit 2.
        let rows = downsample::read(path, args.width as usize * downsample::COLUMNS_PER_PIXEL)
            .map_err(crate::bad_input)?;
        if rows.is_empty() {
            return Err(crate::BadInput(format!(
                "{} has a header but no rows: nothing to plot (was the recording stopped at once?)",
                path.display()
            ))
            .into());
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        loaded.push((name, rows));
    }
    // One file needs no series name in the legend.
    if loaded.len() == 1 {
        loaded[0].0.clear();
    }
    let series: Vec<(&str, &[TimelineRow])> = loaded
        .iter()
        .map(|(n, r)| (n.as_str(), r.as_slice()))
        .collect();
    let options = PlotOptions {
        width: args.width,
        height: args.height,
        metric_label: args
            .metric_label
            .clone()
            .unwrap_or_else(|| metric_label(profile).into()),
        load_label: args.load_label.clone(),
        title: args.title.clone(),
    };
    plot_timelines_with(&series, &args.out, &options)?;
    Ok(args.out.clone())
}

/// The metric axis' label for a metric profile: what the HPA's metric measures, with its unit.
pub fn metric_label(profile: crate::config::MetricProfile) -> &'static str {
    match profile {
        crate::config::MetricProfile::MeanDuration => "mean request duration (s)",
        crate::config::MetricProfile::Concurrency => "requests per pod",
        crate::config::MetricProfile::Queue => "queued requests per pod",
    }
}

/// How to draw a picture.
#[derive(Debug, Clone)]
pub struct PlotOptions {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Axis label of the metric, with its unit.
    pub metric_label: String,
    /// Axis label of the load, with its unit.
    pub load_label: String,
    /// Title above the picture; a default names what is shown.
    pub title: Option<String>,
}

impl Default for PlotOptions {
    fn default() -> Self {
        Self {
            width: 1200,
            height: 800,
            metric_label: metric_label(crate::config::MetricProfile::MeanDuration).into(),
            load_label: "load (concurrent clients or req/s)".into(),
            title: None,
        }
    }
}

/// The picture format, chosen by the output file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Png,
    Svg,
}

fn format_of(path: &Path) -> anyhow::Result<Format> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => Ok(Format::Png),
        Some("svg") => Ok(Format::Svg),
        _ => anyhow::bail!(
            "cannot tell the picture format of {}: name it *.png or *.svg",
            path.display()
        ),
    }
}

/// Draws one or more labelled timelines on shared axes into a PNG or SVG file (by extension).
pub fn plot_timelines_with(
    series: &[(&str, &[TimelineRow])],
    path: &Path,
    options: &PlotOptions,
) -> anyhow::Result<()> {
    let format = format_of(path)?;
    if !(16..=20_000).contains(&options.width) || !(16..=20_000).contains(&options.height) {
        anyhow::bail!(
            "a picture of {}x{} pixels cannot be drawn: use 16 to 20000 pixels per side",
            options.width,
            options.height
        );
    }
    if series.iter().all(|(_, rows)| rows.is_empty()) {
        anyhow::bail!("nothing to plot: the timeline has no rows");
    }
    register_fonts();
    // Rows beyond the picture's resolution only cost memory and file size (an SVG holds every
    // point): reduce each series to a few rows per pixel column, keeping its extremes.
    let columns = options.width as usize * downsample::COLUMNS_PER_PIXEL;
    let reduced: Vec<(&str, std::borrow::Cow<'_, [TimelineRow]>)> = series
        .iter()
        .map(|(name, rows)| {
            if rows.len() <= columns {
                return (*name, std::borrow::Cow::Borrowed(*rows));
            }
            let (lo, hi) = rows
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
                    (lo.min(r.t_seconds), hi.max(r.t_seconds))
                });
            let kept = downsample::downsample(rows.iter().cloned(), (lo, hi), columns);
            (*name, std::borrow::Cow::Owned(kept))
        })
        .collect();
    let series: Vec<(&str, &[TimelineRow])> =
        reduced.iter().map(|(n, r)| (*n, r.as_ref())).collect();
    let prepared = Prepared::new(&series);
    let size = (options.width, options.height);
    let drawn = match format {
        Format::Png => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            draw(&root, &prepared, options).and_then(|()| root.present().map_err(drawing_error))
        }
        Format::Svg => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            draw(&root, &prepared, options).and_then(|()| root.present().map_err(drawing_error))
        }
    };
    drawn.with_context(|| format!("cannot draw the timeline into {}", path.display()))
}

fn drawing_error<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// One series, on the common time axis.
struct Line<'a> {
    name: &'a str,
    /// Time of each row on the shared axis, in the axis unit.
    t: Vec<f64>,
    rows: &'a [TimelineRow],
}

/// Every series placed on one time axis, and the ranges of each panel.
struct Prepared<'a> {
    lines: Vec<Line<'a>>,
    /// Divide seconds by this to get the axis unit (1 or 60).
    time_unit: (f64, &'static str),
    t_range: Range<f64>,
    has_autoscaler: bool,
}

fn has_autoscaler_data(rows: &[TimelineRow]) -> bool {
    rows.iter().any(|r| {
        r.replicas_current > 0
            || r.replicas_desired > 0
            || r.metric_value.is_some()
            || r.target > 0.0
    })
}

/// The load of a row: the offered load when recorded, else the send rate.
fn load_of(r: &TimelineRow) -> Option<f64> {
    r.load.or(r.send_rate)
}

impl<'a> Prepared<'a> {
    fn new(series: &'a [(&'a str, &'a [TimelineRow])]) -> Self {
        // Separate recordings share an axis through their wall-clock column when they all have
        // one; otherwise each starts at its own zero.
        let all_unix = series
            .iter()
            .all(|(_, rows)| rows.first().and_then(|r| r.unix_seconds).is_some());
        // The origin is the earliest start of a recording (its first row's wall clock minus
        // its time since the start), so each keeps its own offset from its start.
        let origin = if all_unix {
            series
                .iter()
                .filter_map(|(_, rows)| {
                    rows.first()
                        .and_then(|r| Some(r.unix_seconds? - r.t_seconds))
                })
                .fold(f64::INFINITY, f64::min)
        } else {
            0.0
        };
        let seconds = |r: &TimelineRow| match (all_unix, r.unix_seconds) {
            (true, Some(u)) => u - origin,
            _ => r.t_seconds,
        };
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for (_, rows) in series {
            for r in rows.iter() {
                let s = seconds(r);
                lo = lo.min(s);
                hi = hi.max(s);
            }
        }
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        let time_unit = if hi - lo > 900.0 {
            (60.0, "time (min)")
        } else {
            (1.0, "time (s)")
        };
        let lines = series
            .iter()
            .map(|(name, rows)| Line {
                name,
                t: rows.iter().map(|r| seconds(r) / time_unit.0).collect(),
                rows,
            })
            .collect();
        let (lo, hi) = (lo / time_unit.0, hi / time_unit.0);
        let t_range = if hi > lo { lo..hi } else { lo..lo + 1.0 };
        Self {
            lines,
            time_unit,
            t_range,
            has_autoscaler: series.iter().any(|(_, rows)| has_autoscaler_data(rows)),
        }
    }
}

/// How far above the largest value the y axis goes, so that the legend (top left, `entries`
/// lines) covers no data: the legend's estimated height as a share of the panel's plot area.
fn headroom(options: &PlotOptions, entries: usize) -> f64 {
    let h = f64::from(options.height);
    let lf = label_font(options);
    let legend_px = entries as f64 * lf * 1.45 + 14.0;
    // Half the picture, less the title, caption, x labels and margins (see `frame`).
    let plot_px = h / 2.0
        - (h * 0.035).max(12.0) / 2.0
        - (h * 0.025).max(10.0)
        - (h * 0.06).max(24.0)
        - 2.0 * (h * 0.015).max(4.0);
    let free = 1.0 - legend_px / plot_px.max(1.0) - 0.04;
    (1.0 / free.max(0.33)).clamp(1.1, 3.0)
}

/// A y range from 0 to `headroom` times the largest value, never empty.
fn y_range(max: f64, headroom: f64) -> Range<f64> {
    let top = if max.is_finite() && max > 0.0 {
        max * headroom
    } else {
        1.0
    };
    0.0..top
}

/// Points of a step line: the value holds until the next observation.
fn steps(t: &[f64], v: &[f64]) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(t.len() * 2);
    for i in 0..t.len() {
        if i > 0 {
            out.push((t[i], v[i - 1]));
        }
        out.push((t[i], v[i]));
    }
    out
}

/// A closed outline between a line and the zero axis.
fn area_under(pts: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out = pts.to_vec();
    if let (Some(first), Some(last)) = (pts.first(), pts.last()) {
        out.push((last.0, 0.0));
        out.push((first.0, 0.0));
    }
    out
}

/// `(t, value)` for the rows where the value is known.
fn known(line: &Line<'_>, f: impl Fn(&TimelineRow) -> Option<f64>) -> Vec<(f64, f64)> {
    line.t
        .iter()
        .zip(line.rows)
        .filter_map(|(t, r)| f(r).filter(|v| v.is_finite()).map(|v| (*t, v)))
        .collect()
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];
const LOAD_COLOR: RGBColor = RGBColor(150, 150, 150);
const TARGET_COLOR: RGBColor = RGBColor(0, 0, 0);

fn label(name: &str, what: &str) -> String {
    if name.is_empty() {
        what.to_owned()
    } else {
        format!("{name}: {what}")
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    p: &Prepared<'_>,
    options: &PlotOptions,
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(drawing_error)?;
    let height = options.height as f64;
    let font = |frac: f64, min: f64| (height * frac).max(min);
    let title = options.title.clone().unwrap_or_else(|| {
        if p.has_autoscaler {
            "Autoscaling timeline".to_owned()
        } else {
            "Load timeline".to_owned()
        }
    });
    let root = root
        .titled(&title, ("sans-serif", font(0.035, 12.0)))
        .map_err(drawing_error)?;
    let (top, bottom) = root.split_vertically(root.dim_in_pixel().1 / 2);
    if p.has_autoscaler {
        draw_replicas(&top, p, options)?;
        draw_metric(&bottom, p, options)?;
    } else {
        draw_load(&top, p, options)?;
        draw_latency(&bottom, p, options)?;
    }
    Ok(())
}

/// Common chart frame: margins, label areas sized to the picture.
fn frame<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    options: &PlotOptions,
    caption: &str,
    secondary: bool,
) -> ChartBuilder<'a, 'a, DB> {
    let h = options.height as f64;
    let w = options.width as f64;
    let mut b = ChartBuilder::on(area);
    b.margin((h * 0.015).max(4.0))
        .caption(caption, ("sans-serif", (h * 0.025).max(10.0)))
        .x_label_area_size((h * 0.06).max(24.0))
        .y_label_area_size((w * 0.07).max(40.0));
    if secondary {
        b.right_y_label_area_size((w * 0.07).max(40.0));
    }
    b
}

fn label_font(options: &PlotOptions) -> f64 {
    (options.height as f64 * 0.018).max(9.0)
}

/// The time axis and one value axis, styled alike on every panel; the caller adds its own ticks
/// and draws.
fn axes<'a, 'b, DB: DrawingBackend>(
    chart: &'b mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    p: &Prepared<'_>,
    options: &PlotOptions,
    y_desc: &str,
) -> MeshStyle<'a, 'b, RangedCoordf64, RangedCoordf64, DB> {
    let lf = label_font(options);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(p.time_unit.1)
        .x_label_formatter(&whole_number)
        .light_line_style(BLACK.mix(0.04))
        .y_desc(y_desc)
        .label_style(("sans-serif", lf))
        .axis_desc_style(("sans-serif", lf));
    mesh
}

/// A time tick: whole units.
fn whole_number(v: &f64) -> String {
    format!("{v:.0}")
}

fn draw_replicas<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &Prepared<'_>,
    options: &PlotOptions,
) -> anyhow::Result<()> {
    let max_replicas = p
        .lines
        .iter()
        .flat_map(|l| l.rows.iter())
        .map(|r| r.replicas_current.max(r.replicas_desired))
        .max()
        .unwrap_or(1);
    let max_load = peak(p, |r| [load_of(r)]);
    let has_load = max_load > 0.0;
    let entries = p
        .lines
        .iter()
        .filter(|l| l.rows.iter().any(|r| load_of(r).is_some()))
        .count()
        + 2 * p
            .lines
            .iter()
            .filter(|l| has_autoscaler_data(l.rows))
            .count();
    let room = headroom(options, entries);
    let y_top = (f64::from(max_replicas.max(1)) * room).ceil();
    let mut chart = frame(area, options, "Replicas and offered load", has_load)
        .build_cartesian_2d(p.t_range.clone(), 0.0..y_top)
        .map_err(drawing_error)?
        .set_secondary_coord(p.t_range.clone(), y_range(max_load, room));
    let lf = label_font(options);
    axes(&mut chart, p, options, "replicas (pods)")
        .y_labels(replica_labels(y_top))
        .y_label_formatter(&|v| integer_label(*v))
        .draw()
        .map_err(drawing_error)?;
    if has_load {
        chart
            .configure_secondary_axes()
            .y_desc(options.load_label.as_str())
            .label_style(("sans-serif", lf))
            .axis_desc_style(("sans-serif", lf))
            .draw()
            .map_err(drawing_error)?;
    }
    for (i, line) in p.lines.iter().enumerate() {
        let load = known(line, load_of);
        if load.is_empty() {
            continue;
        }
        let style = LOAD_COLOR.mix(if p.lines.len() > 1 {
            0.5 + 0.5 / (i + 1) as f64
        } else {
            1.0
        });
        let (t, v): (Vec<f64>, Vec<f64>) = load.into_iter().unzip();
        let pts = steps(&t, &v);
        chart
            .draw_secondary_series(std::iter::once(Polygon::new(
                area_under(&pts),
                style.mix(0.25).filled(),
            )))
            .map_err(drawing_error)?;
        chart
            .draw_secondary_series(LineSeries::new(pts, style.stroke_width(1)))
            .map_err(drawing_error)?
            .label(label(line.name, "load (right axis)"))
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 4), (x + 20, y + 4)], style.mix(0.4).filled())
            });
    }
    for (i, line) in p.lines.iter().enumerate() {
        if !has_autoscaler_data(line.rows) {
            continue;
        }
        let color = PALETTE[i % PALETTE.len()];
        let cur: Vec<f64> = line
            .rows
            .iter()
            .map(|r| f64::from(r.replicas_current))
            .collect();
        let des: Vec<f64> = line
            .rows
            .iter()
            .map(|r| f64::from(r.replicas_desired))
            .collect();
        chart
            .draw_series(LineSeries::new(steps(&line.t, &cur), color.stroke_width(3)))
            .map_err(drawing_error)?
            .label(label(line.name, "current replicas"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        let dashed = color.mix(0.9).stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new(steps(&line.t, &des), 8, 5, dashed))
            .map_err(drawing_error)?
            .label(label(line.name, "desired replicas"))
            .legend(move |(x, y)| DashedPathElement::new(vec![(x, y), (x + 20, y)], 5, 3, dashed));
    }
    legend(&mut chart, options)
}

/// How many labels the replica axis asks plotters for: one per whole pod up to 10, so the
/// ticks fall on whole numbers (plotters picks steps of 1, 2 or 5 times a power of ten).
fn replica_labels(y_top: f64) -> usize {
    (y_top.max(1.0) as usize + 1).min(11)
}

/// A replica count label: whole numbers only, so no two ticks read the same (a 0..3 axis with
/// ten ticks used to read 0 0 1 2 2 2 3).
fn integer_label(v: f64) -> String {
    if (v - v.round()).abs() < 1e-6 {
        format!("{v:.0}")
    } else {
        String::new()
    }
}

fn legend<'a, DB: DrawingBackend + 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    options: &PlotOptions,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", label_font(options)))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.5))
        .draw()
        .map_err(drawing_error)
}

fn draw_metric<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &Prepared<'_>,
    options: &PlotOptions,
) -> anyhow::Result<()> {
    let max = peak(p, |r| [r.metric_value, Some(r.target)]);
    let entries = 2 * p
        .lines
        .iter()
        .filter(|l| has_autoscaler_data(l.rows))
        .count();
    let mut chart = frame(area, options, "HPA metric against its target", false)
        .build_cartesian_2d(p.t_range.clone(), y_range(max, headroom(options, entries)))
        .map_err(drawing_error)?;
    axes(&mut chart, p, options, options.metric_label.as_str())
        .draw()
        .map_err(drawing_error)?;
    for (i, line) in p.lines.iter().enumerate() {
        if !has_autoscaler_data(line.rows) {
            continue;
        }
        let color = PALETTE[i % PALETTE.len()];
        let target = known(line, |r| Some(r.target).filter(|t| *t > 0.0));
        if !target.is_empty() {
            let (t, v): (Vec<f64>, Vec<f64>) = target.into_iter().unzip();
            let style = TARGET_COLOR.mix(0.8).stroke_width(2);
            chart
                .draw_series(DashedLineSeries::new(steps(&t, &v), 10, 6, style))
                .map_err(drawing_error)?
                .label(label(line.name, "target"))
                .legend(move |(x, y)| {
                    DashedPathElement::new(vec![(x, y), (x + 20, y)], 5, 3, style)
                });
        }
        // A gap where the metric could not be read is drawn as a gap, not as a line through it.
        draw_with_gaps(
            &mut chart,
            line,
            |r| r.metric_value,
            color.stroke_width(3),
            "metric",
        )?;
    }
    legend(&mut chart, options)
}

/// The largest finite value `values` gives over every row of every line (0 when none is known).
fn peak<const N: usize>(
    p: &Prepared<'_>,
    values: impl Fn(&TimelineRow) -> [Option<f64>; N],
) -> f64 {
    p.lines
        .iter()
        .flat_map(|l| l.rows.iter())
        .flat_map(values)
        .flatten()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
}

/// One line per run of known values of `f`, labelled once: an unknown stretch stays a gap.
fn draw_with_gaps<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    line: &Line<'_>,
    f: impl Fn(&TimelineRow) -> Option<f64>,
    style: ShapeStyle,
    what: &str,
) -> anyhow::Result<()> {
    for (i, segment) in segments(line, f).into_iter().enumerate() {
        let drawn = chart
            .draw_series(LineSeries::new(segment, style))
            .map_err(drawing_error)?;
        if i == 0 {
            drawn
                .label(label(line.name, what))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
    }
    Ok(())
}

/// Runs of consecutive rows where `f` is known.
fn segments(line: &Line<'_>, f: impl Fn(&TimelineRow) -> Option<f64>) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current = Vec::new();
    for (t, r) in line.t.iter().zip(line.rows) {
        match f(r).filter(|v| v.is_finite()) {
            Some(v) => current.push((*t, v)),
            None if !current.is_empty() => out.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn draw_load<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &Prepared<'_>,
    options: &PlotOptions,
) -> anyhow::Result<()> {
    let max = peak(p, |r| [r.load, r.send_rate]);
    let entries: usize = p
        .lines
        .iter()
        .map(|l| {
            usize::from(l.rows.iter().any(|r| r.load.is_some()))
                + usize::from(l.rows.iter().any(|r| r.send_rate.is_some()))
        })
        .sum();
    let mut chart = frame(area, options, "Offered load and send rate", false)
        .build_cartesian_2d(p.t_range.clone(), y_range(max, headroom(options, entries)))
        .map_err(drawing_error)?;
    axes(&mut chart, p, options, "clients, or requests/s")
        .draw()
        .map_err(drawing_error)?;
    for (i, line) in p.lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let load = known(line, |r| r.load);
        if !load.is_empty() {
            let (t, v): (Vec<f64>, Vec<f64>) = load.into_iter().unzip();
            chart
                .draw_series(LineSeries::new(steps(&t, &v), LOAD_COLOR.stroke_width(3)))
                .map_err(drawing_error)?
                .label(label(line.name, &options.load_label))
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], LOAD_COLOR.stroke_width(3))
                });
        }
        let rate = known(line, |r| r.send_rate);
        if !rate.is_empty() {
            chart
                .draw_series(LineSeries::new(rate, color.stroke_width(2)))
                .map_err(drawing_error)?
                .label(label(line.name, "requests sent (req/s)"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
    }
    legend(&mut chart, options)
}

fn draw_latency<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &Prepared<'_>,
    options: &PlotOptions,
) -> anyhow::Result<()> {
    let max = peak(p, |r| [r.p50_seconds, r.p99_seconds]);
    let mut chart = frame(
        area,
        options,
        "Latency of the requests finished per interval",
        false,
    )
    .build_cartesian_2d(
        p.t_range.clone(),
        y_range(max, headroom(options, 2 * p.lines.len())),
    )
    .map_err(drawing_error)?;
    axes(&mut chart, p, options, "latency (s)")
        .draw()
        .map_err(drawing_error)?;
    for (i, line) in p.lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        for (what, f, width) in [
            (
                "p50 latency",
                (|r: &TimelineRow| r.p50_seconds) as fn(&TimelineRow) -> Option<f64>,
                3,
            ),
            ("p99 latency", |r: &TimelineRow| r.p99_seconds, 1),
        ] {
            draw_with_gaps(&mut chart, line, f, color.stroke_width(width), what)?;
        }
    }
    legend(&mut chart, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_font_is_a_font() {
        assert!(plotters::style::register_font("kscale-test", FontStyle::Normal, FONT).is_ok());
    }

    #[test]
    fn steps_hold_each_value_until_the_next_row() {
        assert_eq!(
            steps(&[0.0, 1.0, 3.0], &[1.0, 2.0, 2.0]),
            vec![(0.0, 1.0), (1.0, 1.0), (1.0, 2.0), (3.0, 2.0), (3.0, 2.0)]
        );
    }

    #[test]
    fn replica_labels_are_whole_numbers_without_repeats() {
        use plotters::coord::ranged1d::Ranged as _;
        use plotters::coord::types::RangedCoordf64;
        for top in 1..=40 {
            let y_top = f64::from(top);
            let axis = RangedCoordf64::from(0.0..y_top);
            let labels: Vec<String> = axis
                .key_points(replica_labels(y_top))
                .into_iter()
                .map(integer_label)
                .filter(|l| !l.is_empty())
                .collect();
            let mut unique = labels.clone();
            unique.dedup();
            assert_eq!(unique, labels, "axis 0..{top}");
            assert!(labels.len() >= 2, "axis 0..{top}: {labels:?}");
            if top <= 10 {
                assert_eq!(labels.len(), top as usize + 1, "axis 0..{top}: {labels:?}");
            }
        }
    }

    #[test]
    fn format_comes_from_the_extension() {
        assert_eq!(format_of(Path::new("a.PNG")).unwrap(), Format::Png);
        assert_eq!(format_of(Path::new("a.svg")).unwrap(), Format::Svg);
        let msg = format!("{:#}", format_of(Path::new("a.jpg")).unwrap_err());
        assert!(msg.contains(".png or *.svg"), "{msg}");
    }

    #[test]
    fn recordings_with_wall_clock_share_one_axis() {
        let a = [TimelineRow {
            t_seconds: 0.0,
            unix_seconds: Some(1000.0),
            replicas_current: 1,
            ..Default::default()
        }];
        let b = [TimelineRow {
            t_seconds: 1.0,
            unix_seconds: Some(1031.0),
            load: Some(4.0),
            ..Default::default()
        }];
        let series = [("a", &a[..]), ("b", &b[..])];
        let p = Prepared::new(&series);
        assert_eq!(p.lines[1].t, vec![31.0]);
        assert!(p.has_autoscaler);
    }
}
