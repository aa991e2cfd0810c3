//! The run as an SVG picture, drawn by hand (no plotting dependency): latency over time, phase
//! after phase, with throughput beneath; and latency against load, one dot per second and one
//! mark per phase.

use std::fmt::Write as _;

use super::report::Report;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 760.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 80.0;
/// One color per phase, in order, repeating.
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
];

/// A map from data to pixels, linear or logarithmic.
#[derive(Debug, Clone, Copy)]
struct Scale {
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
    log: bool,
}

impl Scale {
    fn at(&self, value: f64) -> f64 {
        let (v, lo, hi) = if self.log {
            (value.max(self.lo).log10(), self.lo.log10(), self.hi.log10())
        } else {
            (value, self.lo, self.hi)
        };
        let span = if hi > lo { hi - lo } else { 1.0 };
        self.from + (v - lo) / span * (self.to - self.from)
    }

    /// Tick values: 1-2-5 steps within each decade on a log scale, about six round steps on a
    /// linear one.
    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let mut ticks = Vec::new();
            let mut decade = 10f64.powf(self.lo.log10().floor());
            while decade <= self.hi * 1.0001 {
                for m in [1.0, 2.0, 5.0] {
                    let t = decade * m;
                    if t >= self.lo * 0.9999 && t <= self.hi * 1.0001 {
                        ticks.push(t);
                    }
                }
                decade *= 10.0;
            }
            ticks
        } else {
            let step = nice_step((self.hi - self.lo) / 6.0);
            let mut ticks = Vec::new();
            let mut t = (self.lo / step).ceil() * step;
            while t <= self.hi + step * 1e-9 {
                ticks.push(t);
                t += step;
            }
            ticks
        }
    }
}

/// A round step (1, 2 or 5 times a power of ten) at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * power)
}

/// A latency scale over `values` (milliseconds), whole decades wide.
fn latency_scale(values: impl Iterator<Item = f64>, from: f64, to: f64) -> Scale {
    let (mut lo, mut hi) = (f64::MAX, 0.0f64);
    for v in values.filter(|v| v.is_finite() && *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if hi <= 0.0 {
        (lo, hi) = (0.1, 10.0);
    }
    Scale {
        lo: 10f64.powf(lo.max(0.001).log10().floor()),
        hi: 10f64
            .powf(hi.log10().ceil())
            .max(10f64.powf(lo.max(0.001).log10().floor()) * 10.0),
        from,
        to,
        log: true,
    }
}

fn number(value: f64) -> String {
    if value >= 1_000.0 && value % 1_000.0 == 0.0 {
        format!("{:.0}k", value / 1_000.0)
    } else if value >= 1_000.0 {
        format!("{:.1}k", value / 1_000.0)
    } else if value >= 1.0 || value == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The frame of a panel: axes, grid lines and tick labels of `x` and `y`.
fn axes(out: &mut String, x: &Scale, y: &Scale, x_label: &str, y_label: &str) {
    let (top, bottom) = (y.to, y.from);
    for t in y.ticks() {
        let py = y.at(t);
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#e6e6e6"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11">{}</text>"##,
            x.from,
            x.to,
            x.from - 6.0,
            py + 4.0,
            number(t)
        );
    }
    for t in x.ticks() {
        let px = x.at(t);
        let _ = writeln!(
            out,
            r##"<line x1="{px:.1}" y1="{bottom:.1}" x2="{px:.1}" y2="{:.1}" stroke="#666"/><text x="{px:.1}" y="{:.1}" text-anchor="middle" font-size="11">{}</text>"##,
            bottom + 4.0,
            bottom + 17.0,
            number(t)
        );
    }
    let _ = writeln!(
        out,
        r##"<rect x="{:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#666"/>"##,
        x.from,
        x.to - x.from,
        bottom - top
    );
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12">{}</text>"##,
        (x.from + x.to) / 2.0,
        bottom + 34.0,
        escape(x_label)
    );
    let _ = writeln!(
        out,
        r##"<text transform="translate({:.1},{:.1}) rotate(-90)" text-anchor="middle" font-size="12">{}</text>"##,
        x.from - 50.0,
        (top + bottom) / 2.0,
        escape(y_label)
    );
}

fn polyline(out: &mut String, points: &[(f64, f64)], color: &str, dash: &str, width: f64) {
    if points.is_empty() {
        return;
    }
    let coords: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    let _ = writeln!(
        out,
        r##"<polyline points="{}" fill="none" stroke="{color}" stroke-width="{width}" stroke-dasharray="{dash}"/>"##,
        coords.join(" ")
    );
}

/// Renders `report` as an SVG document.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">"##
    );
    let _ = writeln!(out, r##"<rect width="100%" height="100%" fill="white"/>"##);
    let title = match report.summary.ratio_to_baseline {
        Some(r) => format!(
            "nudge loadgen: {} users, {} connections, {} cores; Nudge at {:.1} % of the bare baseline",
            report.users,
            report.concurrency,
            report.machine.cores,
            r * 100.0
        ),
        None => format!(
            "nudge loadgen: {} users, {} connections, {} cores",
            report.users, report.concurrency, report.machine.cores
        ),
    };
    let _ = writeln!(
        out,
        r##"<text x="{LEFT}" y="24" font-size="15" font-weight="bold">{}</text>"##,
        escape(&title)
    );
    over_time(&mut out, report, 50.0, 380.0);
    against_load(&mut out, report, 440.0, 710.0);
    out.push_str("</svg>\n");
    out
}

/// Top panel: p50 (solid) and p99 (dashed) per second, phases side by side, throughput in grey
/// on the right-hand axis.
fn over_time(out: &mut String, report: &Report, top: f64, bottom: f64) {
    let gap = 2.0;
    let total: f64 = report
        .phases
        .iter()
        .map(|p| p.timeline.len() as f64 + gap)
        .sum::<f64>()
        .max(1.0);
    let x = Scale {
        lo: 0.0,
        hi: total,
        from: LEFT,
        to: WIDTH - RIGHT,
        log: false,
    };
    let y = latency_scale(
        report
            .phases
            .iter()
            .flat_map(|p| p.timeline.iter().flat_map(|t| [t.p50_ms, t.p99_ms])),
        bottom,
        top + 20.0,
    );
    let max_ok = report
        .phases
        .iter()
        .flat_map(|p| p.timeline.iter().map(|t| t.ok as f64))
        .fold(0.0, f64::max)
        .max(1.0);
    let load = Scale {
        lo: 0.0,
        hi: max_ok * 1.1,
        from: bottom,
        to: top + 20.0,
        log: false,
    };
    let _ = writeln!(
        out,
        r##"<text x="{LEFT}" y="{:.1}" font-size="13">Latency over time (solid p50, dashed p99; grey: answers per second)</text>"##,
        top + 10.0
    );
    axes(
        out,
        &x,
        &y,
        "seconds of measured load, phase after phase",
        "latency (ms, log)",
    );
    let _ = writeln!(
        out,
        r##"<text transform="translate({:.1},{:.1}) rotate(90)" text-anchor="middle" font-size="12" fill="#888">answers per second</text>"##,
        WIDTH - RIGHT + 55.0,
        (top + 20.0 + bottom) / 2.0
    );
    for t in load.ticks() {
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#888">{}</text>"##,
            WIDTH - RIGHT + 6.0,
            load.at(t) + 4.0,
            number(t)
        );
    }
    let mut offset = 0.0;
    for (i, phase) in report.phases.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let at = |s: u64| x.at(offset + s as f64 + 0.5);
        let ok: Vec<_> = phase
            .timeline
            .iter()
            .map(|t| (at(t.second), load.at(t.ok as f64)))
            .collect();
        polyline(out, &ok, "#aaaaaa", "", 1.0);
        let p50: Vec<_> = phase
            .timeline
            .iter()
            .filter(|t| t.ok > 0)
            .map(|t| (at(t.second), y.at(t.p50_ms)))
            .collect();
        let p99: Vec<_> = phase
            .timeline
            .iter()
            .filter(|t| t.ok > 0)
            .map(|t| (at(t.second), y.at(t.p99_ms)))
            .collect();
        polyline(out, &p50, color, "", 1.8);
        polyline(out, &p99, color, "5,3", 1.8);
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="{color}">{}</text>"##,
            x.at(offset) + 3.0,
            top + 34.0,
            escape(&phase.name)
        );
        offset += phase.timeline.len() as f64 + gap;
    }
}

/// Bottom panel: each second of each Nudge phase as a dot (its p99 against its answers per
/// second), and each phase's p50 (square) and p99 (circle) against its throughput.
fn against_load(out: &mut String, report: &Report, top: f64, bottom: f64) {
    let phases: Vec<_> = report
        .phases
        .iter()
        .enumerate()
        .filter(|(_, p)| p.target == "nudge")
        .collect();
    let max_x = phases
        .iter()
        .flat_map(|(_, p)| {
            p.timeline
                .iter()
                .map(|t| t.ok as f64)
                .chain([p.throughput_rps])
        })
        .fold(0.0, f64::max)
        .max(1.0);
    let x = Scale {
        lo: 0.0,
        hi: max_x * 1.1,
        from: LEFT,
        to: WIDTH - RIGHT,
        log: false,
    };
    let y = latency_scale(
        phases.iter().flat_map(|(_, p)| {
            p.timeline
                .iter()
                .filter(|t| t.ok > 0)
                .map(|t| t.p99_ms)
                .chain([p.latency.p50_ms, p.latency.p99_ms])
        }),
        bottom,
        top + 20.0,
    );
    let baseline = report
        .summary
        .baseline_rps
        .map(|b| format!(" (the bare baseline did {b:.0} req/s)"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        r##"<text x="{LEFT}" y="{:.1}" font-size="13">Latency against load: dots are seconds (p99), marks are phases (square p50, circle p99){}</text>"##,
        top + 10.0,
        escape(&baseline)
    );
    axes(out, &x, &y, "answers per second", "latency (ms, log)");
    for (i, phase) in &phases {
        let color = COLORS[i % COLORS.len()];
        for t in phase.timeline.iter().filter(|t| t.ok > 0) {
            let _ = writeln!(
                out,
                r##"<circle cx="{:.1}" cy="{:.1}" r="2" fill="{color}" fill-opacity="0.35"/>"##,
                x.at(t.ok as f64),
                y.at(t.p99_ms)
            );
        }
        let px = x.at(phase.throughput_rps);
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="8" height="8" fill="{color}"/><circle cx="{px:.1}" cy="{:.1}" r="5" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="11" fill="{color}">{}</text>"##,
            px - 4.0,
            y.at(phase.latency.p50_ms) - 4.0,
            y.at(phase.latency.p99_ms),
            px + 8.0,
            y.at(phase.latency.p99_ms) - 6.0,
            escape(&phase.name)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::report::tests::sample_report;

    #[test]
    fn the_picture_is_one_svg_document_with_both_panels_and_every_phase() {
        let svg = render(&sample_report());
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("Latency over time"));
        assert!(svg.contains("Latency against load"));
        assert!(svg.contains("25.0 % of the bare baseline"));
        for phase in ["baseline", "nudge peak", "nudge 50%", "baseline 50%"] {
            assert!(svg.contains(&format!(">{phase}</text>")), "{phase}");
        }
        // Four phases, each a p50 and a p99 line and a throughput line.
        assert_eq!(svg.matches("<polyline").count(), 12);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn an_empty_run_and_odd_names_still_draw_a_valid_picture() {
        let mut report = sample_report();
        report.phases.iter_mut().for_each(|p| p.timeline.clear());
        report.phases[0].name = "a<b & \"c\"".into();
        report.summary.ratio_to_baseline = None;
        let svg = render(&report);
        assert!(svg.contains("a&lt;b &amp; &quot;c&quot;"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn scales_map_ends_to_ends_and_tick_on_round_values() {
        let linear = Scale {
            lo: 0.0,
            hi: 100.0,
            from: 10.0,
            to: 110.0,
            log: false,
        };
        assert_eq!(linear.at(50.0), 60.0);
        assert_eq!(linear.ticks(), [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        let log = Scale {
            lo: 0.1,
            hi: 100.0,
            from: 300.0,
            to: 0.0,
            log: true,
        };
        assert!((log.at(1.0) - 200.0).abs() < 1e-9);
        assert!(
            (log.at(0.01) - 300.0).abs() < 1e-9,
            "values below the range sit at its foot"
        );
        assert_eq!(log.ticks().first(), Some(&0.1));
        assert_eq!(log.ticks().last(), Some(&100.0));
        assert_eq!(nice_step(13.0), 20.0);
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(number(1_500.0), "1.5k");
        assert_eq!(number(2_000.0), "2k");
        assert_eq!(number(0.5), "0.5");
    }
}
