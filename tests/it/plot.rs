//! `kscale plot`: pictures of the requested size and format from a recorded timeline, and errors
//! that point at the broken line of a damaged recording.

use std::path::{Path, PathBuf};

use kscale::cli::PlotArgs;
use kscale::config::MetricProfile;

/// `kscale plot` as the default profile (mean request duration) labels it.
fn run(args: &PlotArgs) -> anyhow::Result<PathBuf> {
    kscale::plot::run(args, MetricProfile::MeanDuration)
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn args(files: Vec<PathBuf>, out: PathBuf, width: u32, height: u32) -> PlotArgs {
    PlotArgs {
        files,
        out,
        width,
        height,
        metric_label: None,
        load_label: "load (concurrent clients)".into(),
        title: None,
    }
}

#[test]
fn png_has_the_requested_size_and_is_not_blank() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("scaling.png");
    // An odd size catches width and height swapped, or a fixed default.
    run(&args(
        vec![fixture("timeline-scaleup.csv")],
        out.clone(),
        1000,
        700,
    ))
    .unwrap();
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .expect("the PNG decodes")
        .to_rgb8();
    assert_eq!(img.dimensions(), (1000, 700));
    // Lines and text: many pixels differ from the white background, in more than one colour.
    let non_white = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    assert!(non_white > 1000 * 700 / 50, "only {non_white} drawn pixels");
    let blue_ish = img.pixels().filter(|p| p.0[2] > 150 && p.0[0] < 80).count();
    assert!(
        blue_ish > 500,
        "the replica/metric lines are missing ({blue_ish} pixels)"
    );
}

#[test]
fn svg_has_the_requested_size_and_labelled_axes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("scaling.svg");
    run(&args(
        vec![fixture("timeline-scaleup.csv")],
        out.clone(),
        640,
        480,
    ))
    .unwrap();
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    assert!(svg.contains(r#"width="640""#) && svg.contains(r#"height="480""#));
    assert!(svg.trim_end().ends_with("</svg>"));
    for text in [
        "replicas (pods)",
        "time (s)",
        "mean request duration (s)",
        "load (concurrent clients)",
        "desired replicas",
        "target",
    ] {
        assert!(svg.contains(text), "the SVG lacks the text {text:?}");
    }
}

#[test]
fn a_load_recording_aligns_with_the_autoscaler_recording() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("both.svg");
    run(&args(
        vec![fixture("timeline-scaleup.csv"), fixture("load-steps.csv")],
        out.clone(),
        800,
        600,
    ))
    .unwrap();
    let svg = std::fs::read_to_string(&out).unwrap();
    // Two files: each series is named after its file in the legend.
    assert!(
        svg.contains("timeline-scaleup: current replicas"),
        "legend names the series"
    );
    assert!(
        svg.contains("load-steps: load (right axis)"),
        "legend names the series"
    );
}

#[test]
fn a_load_only_recording_draws_the_load_side() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("load.svg");
    run(&args(
        vec![fixture("load-steps.csv")],
        out.clone(),
        800,
        600,
    ))
    .unwrap();
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.contains("requests sent (req/s)") && svg.contains("latency (s)"));
    assert!(!svg.contains("replicas (pods)"));
}

#[test]
fn a_malformed_csv_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(fixture("timeline-scaleup.csv")).unwrap();
    let mut lines: Vec<String> = good.lines().map(str::to_owned).collect();
    // Line 6 of the file: its `replicas_current` cell becomes a word.
    let mut cells: Vec<&str> = lines[5].split(',').collect();
    cells[2] = "one";
    lines[5] = cells.join(",");
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let out = dir.path().join("x.png");
    let err = run(&args(vec![bad.clone()], out.clone(), 800, 600)).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("line 6"), "{msg}");
    assert!(msg.contains("`one`"), "{msg}");
    assert!(msg.contains("bad.csv"), "{msg}");
    assert!(!out.exists(), "no picture from a broken recording");
}

#[test]
fn an_unknown_picture_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = run(&args(
        vec![fixture("timeline-scaleup.csv")],
        dir.path().join("x.jpg"),
        800,
        600,
    ))
    .unwrap_err();
    assert!(format!("{err:#}").contains("*.png or *.svg"));
}

#[test]
fn a_huge_recording_is_drawn_at_the_pictures_resolution() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("huge.csv");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
    writeln!(
        file,
        "t_seconds,replicas_current,replicas_desired,metric_value,target,load"
    )
    .unwrap();
    let rows = 300_000;
    for i in 0..rows {
        let replicas = 1 + (i / 50_000) % 3;
        // One row of a spike the picture must still show.
        let metric = if i == 123_457 {
            99.0
        } else {
            10.0 + (i % 7) as f64
        };
        writeln!(
            file,
            "{},{replicas},{replicas},{metric},12,{}",
            i as f64 * 0.1,
            2 + i % 3
        )
        .unwrap();
    }
    drop(file);
    let out = dir.path().join("huge.svg");
    run(&args(vec![csv.clone()], out.clone(), 1200, 800)).unwrap();
    let svg_bytes = std::fs::metadata(&out).unwrap().len();
    let csv_bytes = std::fs::metadata(&csv).unwrap().len();
    // Every row drawn made an SVG larger than the CSV (1.7 GB for 3 million rows); at the
    // picture's resolution it stays a few MB whatever the row count.
    assert!(
        svg_bytes < 4 * 1024 * 1024 && svg_bytes < csv_bytes / 2,
        "SVG of {svg_bytes} bytes from a CSV of {csv_bytes} bytes"
    );
    let kept = kscale::downsample::read(&csv, 2400).unwrap();
    assert!(kept.len() < rows / 5, "{} rows kept", kept.len());
    assert!(
        kept.iter().any(|r| r.metric_value == Some(99.0)),
        "the spike was lost"
    );
}
