//! Latency histograms drawn as SVG: logarithmic bins (20 per decade, 100 ns to
//! 100 ms), one step line per series, both axes logarithmic. Hand-written SVG, no
//! plotting dependency.

use std::fmt::Write;

/// Bins per decade of latency.
pub const BINS_PER_DECADE: usize = 20;
const LOW_NS: f64 = 100.0;
const DECADES: usize = 6;

/// The counts of `latencies_ns` in the log bins (values below or above the range go
/// to the first or last bin).
pub fn bin(latencies_ns: &[u64]) -> Vec<u64> {
    let bins = BINS_PER_DECADE * DECADES;
    let mut counts = vec![0u64; bins];
    for &ns in latencies_ns {
        let x = ((ns.max(1) as f64 / LOW_NS).log10() * BINS_PER_DECADE as f64).floor();
        let i = (x.max(0.0) as usize).min(bins - 1);
        counts[i] += 1;
    }
    counts
}

/// Lower edge of bin `i`, in nanoseconds.
fn edge_ns(i: usize) -> f64 {
    LOW_NS * 10f64.powf(i as f64 / BINS_PER_DECADE as f64)
}

/// An SVG document with one step line per `(label, colour, latencies)`.
pub fn svg(title: &str, series: &[(&str, &str, &[u64])]) -> String {
    let (width, height) = (960.0, 540.0);
    let (left, right, top, bottom) = (80.0, 230.0, 50.0, 60.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let binned: Vec<Vec<u64>> = series.iter().map(|(_, _, l)| bin(l)).collect();
    let max_count = binned.iter().flatten().copied().max().unwrap_or(1).max(1);
    let y_decades = (max_count as f64).log10().ceil().max(1.0);
    let bins = BINS_PER_DECADE * DECADES;
    let x_of = |i: usize| left + plot_w * i as f64 / bins as f64;
    // log10(count + 1), so that a bin with one sample is visible above zero.
    let y_of = |count: u64| top + plot_h * (1.0 - ((count + 1) as f64).log10() / y_decades);

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="16">{}</text>"#,
        left + plot_w / 2.0,
        escape(title)
    );
    // Axes, decade grid lines and labels.
    for d in 0..=DECADES {
        let x = x_of(d * BINS_PER_DECADE);
        let label = match d {
            0 => "100 ns",
            1 => "1 µs",
            2 => "10 µs",
            3 => "100 µs",
            4 => "1 ms",
            5 => "10 ms",
            _ => "100 ms",
        };
        let _ = writeln!(
            out,
            r##"<line x1="{x}" y1="{top}" x2="{x}" y2="{}" stroke="#ddd"/><text x="{x}" y="{}" text-anchor="middle">{label}</text>"##,
            top + plot_h,
            top + plot_h + 18.0
        );
    }
    for d in 0..=(y_decades as u32) {
        let count = 10u64.pow(d);
        let y = top + plot_h * (1.0 - (count as f64).log10() / y_decades);
        let _ = writeln!(
            out,
            r##"<line x1="{left}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{count}</text>"##,
            left + plot_w,
            left - 6.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        out,
        r#"<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">latency ({} bins per decade)</text>"#,
        left + plot_w / 2.0,
        height - 15.0,
        BINS_PER_DECADE
    );
    let _ = writeln!(
        out,
        r#"<text x="20" y="{}" text-anchor="middle" transform="rotate(-90 20 {})">samples per bin (+1, log)</text>"#,
        top + plot_h / 2.0,
        top + plot_h / 2.0
    );
    // One step line per series, and its legend entry.
    for (k, ((label, colour, _), counts)) in series.iter().zip(&binned).enumerate() {
        let mut points = String::new();
        for (i, &c) in counts.iter().enumerate() {
            let y = y_of(c);
            let _ = write!(
                points,
                "{:.1},{:.1} {:.1},{:.1} ",
                x_of(i),
                y,
                x_of(i + 1),
                y
            );
        }
        let _ = writeln!(
            out,
            r#"<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.6"/>"#
        );
        let ly = top + 20.0 + 22.0 * k as f64;
        let lx = left + plot_w + 15.0;
        let _ = writeln!(
            out,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            lx + 24.0,
            lx + 30.0,
            ly + 4.0,
            escape(label)
        );
    }
    let _ = writeln!(out, "</svg>");
    out
}

/// The bins' lower edges in nanoseconds (for the JSON results).
pub fn edges_ns() -> Vec<f64> {
    (0..BINS_PER_DECADE * DECADES).map(edge_ns).collect()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_land_in_their_decade() {
        let counts = bin(&[50, 150, 1_500, 15_000, 1_000_000_000]);
        assert_eq!(counts[0], 1); // 50 ns, clamped to the first bin
        assert_eq!(counts[3], 1); // 150 ns
        assert_eq!(counts[BINS_PER_DECADE + 3], 1); // 1.5 us
        assert_eq!(counts[2 * BINS_PER_DECADE + 3], 1); // 15 us
        assert_eq!(*counts.last().unwrap(), 1); // clamped to the last bin
        assert!(svg("t", &[("a", "red", &[1_000])]).contains("<polyline"));
    }
}
