//! The figures of a run, the summary table (text and Markdown) and the plots
//! of `target/bench/report.md`.

use crate::stats::{Summary, paired_ratio};
use anyhow::Result;
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

/// A goal of issue 13 for one figure, and how to check it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Goal {
    /// The median of Linux ÷ SiON (of a cost: time, cycles) is at least this.
    RatioAtLeast(f64),
    /// SiON's median is at most this (in the figure's unit).
    AtMost(f64),
    /// SiON's median is at least this (in the figure's unit).
    AtLeast(f64),
}

impl Goal {
    /// The goal as the table shows it.
    pub fn describe(&self, unit: &str) -> String {
        match *self {
            Goal::RatioAtLeast(r) if r >= 1.0 => format!("Linux÷SiON ≥ {}", num(r)),
            Goal::RatioAtLeast(r) => format!("≤ {}× Linux", num(1.0 / r)),
            Goal::AtMost(v) => format!("≤ {} {unit}", num(v)),
            Goal::AtLeast(v) => format!("≥ {} {unit}", num(v)),
        }
    }
}

/// One measured figure: SiON's samples (one per round or repetition) and,
/// for a comparison, Linux's samples of the same rounds (same index = same
/// round), lower being better unless `higher_is_better`.
#[derive(Clone, Debug)]
pub struct Figure {
    /// Short key, used for plots (e.g. `ipc_4`).
    pub key: String,
    /// What it is, for the table.
    pub name: String,
    /// Unit of the samples.
    pub unit: String,
    /// SiON's samples.
    pub sion: Vec<f64>,
    /// Linux's samples of the same rounds; empty when Linux has no counterpart.
    pub linux: Vec<f64>,
    /// The goal, if issue 13 sets one.
    pub goal: Option<Goal>,
}

impl Figure {
    /// A figure of SiON alone.
    pub fn sion(key: &str, name: &str, unit: &str, samples: Vec<f64>, goal: Option<Goal>) -> Self {
        Figure {
            key: key.into(),
            name: name.into(),
            unit: unit.into(),
            sion: samples,
            linux: Vec::new(),
            goal,
        }
    }

    /// A comparison: SiON's and Linux's samples, round by round.
    pub fn compare(
        key: &str,
        name: &str,
        unit: &str,
        sion: Vec<f64>,
        linux: Vec<f64>,
        goal: Option<Goal>,
    ) -> Self {
        Figure {
            key: key.into(),
            name: name.into(),
            unit: unit.into(),
            sion,
            linux,
            goal,
        }
    }

    /// Linux ÷ SiON, median over the rounds measured on both (above 1:
    /// SiON costs less).
    pub fn ratio(&self) -> Option<Summary> {
        paired_ratio(&self.linux, &self.sion)
    }

    /// Whether the goal is met: `None` without a goal or without data.
    pub fn met(&self) -> Option<bool> {
        let goal = self.goal?;
        Some(match goal {
            Goal::RatioAtLeast(r) => self.ratio()?.median >= r,
            Goal::AtMost(v) => Summary::of(&self.sion)?.median <= v,
            Goal::AtLeast(v) => Summary::of(&self.sion)?.median >= v,
        })
    }
}

/// A number with about three significant digits.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if v.is_nan() {
        "–".into()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn cell(samples: &[f64]) -> String {
    match Summary::of(samples) {
        None => "–".into(),
        Some(s) if s.n == 1 => num(s.median),
        Some(s) => format!("{} ({}–{})", num(s.median), num(s.min), num(s.max)),
    }
}

fn ratio_cell(f: &Figure) -> String {
    match f.ratio() {
        None => String::new(),
        Some(r) if r.n == 1 => format!("{}×", num(r.median)),
        Some(r) => format!("{}× ({}–{})", num(r.median), num(r.min), num(r.max)),
    }
}

fn met_cell(f: &Figure) -> &'static str {
    match f.met() {
        Some(true) => "yes",
        Some(false) => "NO",
        None if f.goal.is_some() => "not measured",
        None => "",
    }
}

/// The rows of the summary table: figure, unit, SiON, Linux, ratio, goal, met.
fn rows(figures: &[Figure]) -> Vec<[String; 7]> {
    figures
        .iter()
        .map(|f| {
            [
                f.name.clone(),
                f.unit.clone(),
                cell(&f.sion),
                if f.linux.is_empty() {
                    String::new()
                } else {
                    cell(&f.linux)
                },
                ratio_cell(f),
                f.goal.map_or(String::new(), |g| g.describe(&f.unit)),
                met_cell(f).into(),
            ]
        })
        .collect()
}

const HEADER: [&str; 7] = [
    "figure",
    "unit",
    "SiON median (min–max)",
    "Linux median (min–max)",
    "Linux÷SiON",
    "goal",
    "met",
];

/// The summary table as aligned text for the terminal.
pub fn text_table(figures: &[Figure]) -> String {
    let rows = rows(figures);
    let mut width = HEADER.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (c, w) in cells.iter().zip(width) {
            let pad = w - c.chars().count();
            s.push_str(c);
            s.push_str(&" ".repeat(pad + 2));
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(&HEADER.map(String::from));
    for r in &rows {
        out.push_str(&line(r));
    }
    out
}

/// The summary table in Markdown.
pub fn markdown_table(figures: &[Figure]) -> String {
    let mut out = format!("| {} |\n", HEADER.join(" | "));
    out.push_str(&format!("|{}\n", "---|".repeat(HEADER.len())));
    for r in rows(figures) {
        out.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    out
}

/// Writes `report.md` and its plots (`ipc.svg`, `ratios.svg`,
/// `rounds.svg`) into `dir`; `context` is Markdown placed before the table
/// (what was run, where). Returns the report's path.
pub fn write(dir: &Path, context: &str, figures: &[Figure]) -> Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let mut md = String::from("# `./sion bench` report\n\n");
    md.push_str(context);
    md.push_str("\n\n## Summary\n\n");
    md.push_str(&markdown_table(figures));
    md.push_str(
        "\nMedians over the rounds (min–max in brackets); Linux÷SiON is the median of the \
         per-round ratios of the interleaved runs (above 1: SiON costs less).\n",
    );
    let mut plots = Vec::new();
    if plot_ipc(&dir.join("ipc.svg"), figures)? {
        plots.push((
            "ipc.svg",
            "IPC: one-way send + receive by message size (TSC cycles, medians)",
        ));
    }
    if plot_ratios(&dir.join("ratios.svg"), figures)? {
        plots.push(("ratios.svg", "Linux ÷ SiON for every comparison (above 1: SiON is cheaper); bars: median, lines: min–max"));
    }
    if plot_rounds(&dir.join("rounds.svg"), figures)? {
        plots.push((
            "rounds.svg",
            "Compute times round by round (interleaved SiON, Linux, …)",
        ));
    }
    md.push_str("\n## Plots\n");
    for (file, caption) in plots {
        let _ = write!(md, "\n### {caption}\n\n![{caption}]({file})\n");
    }
    md.push_str("\n## Samples\n\n");
    for f in figures {
        let fmt = |v: &[f64]| v.iter().map(|x| num(*x)).collect::<Vec<_>>().join(", ");
        let spread = |v: &[f64]| {
            Summary::of(v).map_or(String::new(), |s| {
                format!(" (spread {:.0} %)", s.spread() * 100.0)
            })
        };
        let _ = write!(
            md,
            "- {} ({}): SiON [{}]{}",
            f.name,
            f.unit,
            fmt(&f.sion),
            spread(&f.sion)
        );
        if !f.linux.is_empty() {
            let _ = write!(md, "; Linux [{}]{}", fmt(&f.linux), spread(&f.linux));
        }
        md.push('\n');
    }
    let path = dir.join("report.md");
    std::fs::write(&path, md)?;
    Ok(path)
}

const SION_COLOR: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const LINUX_COLOR: RGBColor = RGBColor(0xd6, 0x27, 0x28);
const SETUP_COLOR: RGBColor = RGBColor(0xff, 0x7f, 0x0e);

/// IPC cycles against message size, log-log: SiON, Linux steady state and
/// Linux with set-up. Figures are found by key: `ipc_SIZE` (SiON one-way vs
/// Linux one-way) and `ipcsetup_SIZE` (Linux with set-up in `linux`).
/// Returns false (and writes nothing) when there is no IPC figure.
fn plot_ipc(path: &Path, figures: &[Figure]) -> Result<bool> {
    let series = |prefix: &str, linux: bool| -> Vec<(f64, f64)> {
        figures
            .iter()
            .filter_map(|f| {
                let size: f64 = f.key.strip_prefix(prefix)?.parse().ok()?;
                let s = Summary::of(if linux { &f.linux } else { &f.sion })?;
                Some((size, s.median))
            })
            .collect()
    };
    let lines = [
        ("SiON one-way", series("ipc_", false), SION_COLOR),
        ("Linux AF_UNIX one-way", series("ipc_", true), LINUX_COLOR),
        (
            "Linux AF_UNIX with set-up",
            series("ipcsetup_", true),
            SETUP_COLOR,
        ),
    ];
    let all: Vec<f64> = lines.iter().flat_map(|l| l.1.iter().map(|p| p.1)).collect();
    if all.is_empty() {
        return Ok(false);
    }
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min).max(1.0) / 2.0;
    let hi = all.iter().copied().fold(0.0, f64::max) * 2.0;
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "IPC one-way send + receive (TSC cycles)",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((2f64..131072f64).log_scale(), (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("message size (bytes)")
        .y_desc("cycles")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    for (label, points, color) in lines {
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()?;
    root.present()?;
    Ok(true)
}

/// Horizontal bars of Linux ÷ SiON (median; a line from min to max) for
/// every compared figure, on a logarithmic axis so that 0.01× and 5× both
/// read.
fn plot_ratios(path: &Path, figures: &[Figure]) -> Result<bool> {
    let bars: Vec<(String, Summary)> = figures
        .iter()
        .filter_map(|f| Some((f.key.clone(), f.ratio()?)))
        .filter(|(_, s)| s.min > 0.0)
        .collect();
    if bars.is_empty() {
        return Ok(false);
    }
    let lo = bars.iter().map(|b| b.1.min).fold(1.0, f64::min) / 2.0;
    let hi = bars.iter().map(|b| b.1.max).fold(1.0, f64::max) * 2.0;
    let n = bars.len();
    let root = SVGBackend::new(path, (900, 80 + 28 * n as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Linux ÷ SiON (right of 1: SiON is cheaper)",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(170)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..n as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n * 2 + 1)
        .y_label_formatter(&|y| {
            let i = (*y - 0.5).round();
            if (y - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                // Row 0 at the top.
                names
                    .get(n.saturating_sub(1 + i as usize))
                    .cloned()
                    .unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_label_formatter(&|x| format!("{x}×"))
        .x_desc("Linux ÷ SiON")
        .draw()?;
    let row = |i: usize| (n - 1 - i) as f64;
    chart.draw_series(bars.iter().enumerate().map(|(i, (_, s))| {
        let color = if s.median >= 1.0 {
            SION_COLOR
        } else {
            LINUX_COLOR
        };
        Rectangle::new(
            [(lo, row(i) + 0.2), (s.median, row(i) + 0.8)],
            color.filled(),
        )
    }))?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (_, s))| {
        let y = row(i) + 0.5;
        PathElement::new(vec![(s.min, y), (s.max, y)], BLACK.stroke_width(2))
    }))?;
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(1.0, 0.0), (1.0, n as f64)],
        BLACK.stroke_width(1),
    )))?;
    root.present()?;
    Ok(true)
}

/// Compute times round by round: one line per system and compute figure
/// (keys starting with `compute_`).
fn plot_rounds(path: &Path, figures: &[Figure]) -> Result<bool> {
    let compute: Vec<&Figure> = figures
        .iter()
        .filter(|f| f.key.starts_with("compute_") && !f.linux.is_empty())
        .collect();
    let rounds = compute
        .iter()
        .map(|f| f.sion.len().max(f.linux.len()))
        .max()
        .unwrap_or(0);
    let top = compute
        .iter()
        .flat_map(|f| f.sion.iter().chain(&f.linux))
        .copied()
        .filter(|x| !x.is_nan())
        .fold(0.0, f64::max);
    if compute.is_empty() || rounds == 0 || top <= 0.0 {
        return Ok(false);
    }
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Compute time per round (s)", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.5f64..rounds as f64 + 0.5, 0f64..top * 1.15)?;
    chart
        .configure_mesh()
        .x_labels(rounds)
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-6 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        })
        .x_desc("round")
        .y_desc("seconds")
        .draw()?;
    let palette = [
        SION_COLOR,
        LINUX_COLOR,
        SETUP_COLOR,
        RGBColor(0x2c, 0xa0, 0x2c),
    ];
    for (i, f) in compute.iter().enumerate() {
        let color = palette[i % palette.len()];
        for (samples, system, dashed) in [(&f.sion, "SiON", false), (&f.linux, "Linux", true)] {
            let points: Vec<(f64, f64)> = samples
                .iter()
                .enumerate()
                .filter(|(_, v)| !v.is_nan())
                .map(|(r, v)| (r as f64 + 1.0, *v))
                .collect();
            let style = if dashed {
                color.mix(0.5).stroke_width(2)
            } else {
                color.stroke_width(2)
            };
            chart
                .draw_series(LineSeries::new(points.clone(), style))?
                .label(format!("{} {system}", f.key.trim_start_matches("compute_")))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, style.filled())))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()?;
    root.present()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> Vec<Figure> {
        vec![
            Figure::compare(
                "compute_nthprime",
                "n-th prime",
                "s",
                vec![1.0, 1.1, 0.9],
                vec![1.2, 1.2, 1.2],
                Some(Goal::RatioAtLeast(1.1)),
            ),
            Figure::compare(
                "ipc_4",
                "IPC 4 B",
                "cycles",
                vec![1000.0],
                vec![30000.0],
                Some(Goal::RatioAtLeast(20.0)),
            ),
            Figure::compare(
                "ipcsetup_4",
                "IPC 4 B with set-up",
                "cycles",
                vec![1000.0],
                vec![50000.0],
                None,
            ),
            Figure::compare(
                "ipc_65500",
                "IPC 64 KB",
                "cycles",
                vec![200000.0],
                vec![100000.0],
                Some(Goal::RatioAtLeast(1.0)),
            ),
            Figure::sion(
                "submit",
                "submit latency",
                "ms",
                vec![21.0, 19.0, 25.0],
                Some(Goal::AtMost(5.0)),
            ),
            Figure::sion(
                "upload",
                "upload",
                "MB/s",
                vec![60.0],
                Some(Goal::AtLeast(50.0)),
            ),
            Figure::sion(
                "image",
                "image size",
                "bytes",
                vec![],
                Some(Goal::AtMost(1.0)),
            ),
        ]
    }

    #[test]
    fn goals_are_checked_on_medians_and_ratios() {
        let f = figures();
        // Per-round ratios 1.2, 1.09, 1.33: median 1.2 >= 1.1.
        assert_eq!(f[0].met(), Some(true));
        assert!((f[0].ratio().unwrap().median - 1.2).abs() < 1e-12);
        assert_eq!(f[1].met(), Some(true), "30× ≥ 20×");
        assert_eq!(f[2].met(), None, "no goal");
        assert_eq!(f[3].met(), Some(false), "SiON twice as slow at 64 KB");
        assert_eq!(f[4].met(), Some(false), "median 21 ms > 5 ms");
        assert_eq!(f[5].met(), Some(true));
        assert_eq!(f[6].met(), None, "no samples");
    }

    #[test]
    fn tables_show_medians_spreads_and_verdicts() {
        let text = text_table(&figures());
        let row = text.lines().find(|l| l.starts_with("n-th prime")).unwrap();
        assert!(row.contains("1.00 (0.900–1.10)"), "{row}");
        assert!(row.contains("1.20 (1.20–1.20)"), "{row}");
        assert!(row.contains("Linux÷SiON ≥ 1.10"), "{row}");
        assert!(row.ends_with("yes"), "{row}");
        let submit = text
            .lines()
            .find(|l| l.starts_with("submit latency"))
            .unwrap();
        assert!(
            submit.contains("21.0 (19.0–25.0)") && submit.ends_with("NO"),
            "{submit}"
        );
        let image = text.lines().find(|l| l.starts_with("image size")).unwrap();
        assert!(image.ends_with("not measured"), "{image}");
        let md = markdown_table(&figures());
        assert_eq!(md.lines().count(), 2 + figures().len());
        assert!(
            md.lines()
                .nth(2)
                .unwrap()
                .starts_with("| n-th prime | s | 1.00")
        );
    }

    #[test]
    fn report_and_plots_are_written() {
        let dir = std::env::temp_dir().join(format!("sion-bench-report-{}", std::process::id()));
        let path = write(&dir, "context line", &figures()).unwrap();
        let md = std::fs::read_to_string(&path).unwrap();
        assert!(md.contains("context line") && md.contains("| IPC 4 B | cycles |"));
        assert!(md.contains("SiON [21.0, 19.0, 25.0] (spread 29 %)"), "{md}");
        for svg in ["ipc.svg", "ratios.svg", "rounds.svg"] {
            let body = std::fs::read_to_string(dir.join(svg)).unwrap();
            assert!(body.starts_with("<svg") && body.contains("</svg>"), "{svg}");
            assert!(md.contains(&format!("]({svg})")), "{svg} linked");
        }
        let ipc = std::fs::read_to_string(dir.join("ipc.svg")).unwrap();
        assert!(ipc.contains("SiON one-way") && ipc.contains("with set-up"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn numbers_keep_about_three_digits() {
        assert_eq!(num(123456.7), "123457");
        assert_eq!(num(12.345), "12.3");
        assert_eq!(num(1.2345), "1.23");
        assert_eq!(num(0.01234), "0.012");
        assert_eq!(num(f64::NAN), "–");
    }
}
