//! Pictures of autoscaling timelines (`kscale plot`, `kscale simulate --plot`).

use std::path::Path;

use crate::timeline::TimelineRow;

/// Draws one or more labelled timelines on shared axes into a PNG or SVG file (by extension).
pub fn plot_timelines(
    series: &[(&str, &[TimelineRow])],
    path: &Path,
    width: u32,
    height: u32,
) -> anyhow::Result<()> {
    let _ = (series, width, height);
    anyhow::bail!("plotting to {} is not available yet", path.display())
}
