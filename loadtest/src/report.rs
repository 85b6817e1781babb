//! The report: the table, JSON and the SVG chart.

use super::*;

/// `12345.6` as `12,346`.
pub(crate) fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A ratio as `0.987`, or `-`.
pub(crate) fn ratio_text(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.3}"))
}

/// The results as a Markdown table.
pub(crate) fn table(report: &Report) -> String {
    let mut out = String::new();
    out.push_str(
        "| mode | server | rate (median) | min - max over rounds | p50 ms | p99 ms | vs bare: medians | vs bare: paired | server CPU µs/op | server CPU vs bare: paired | errors |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &report.results {
        let _ = writeln!(
            out,
            "| {} | {} | {} {} | {} - {} | {:.3} | {:.3} | {} | {} | {} | {} | {} |",
            r.mode.name(),
            r.server.name(),
            thousands(r.median_rate),
            r.unit,
            thousands(r.min_rate),
            thousands(r.max_rate),
            r.p50_ms,
            r.p99_ms,
            ratio_text(r.ratio_vs_bare),
            ratio_text(r.paired_ratio_vs_bare),
            r.server_cpu_us_per_op
                .map_or_else(|| "-".to_owned(), |us| format!("{us:.1}")),
            ratio_text(r.server_cpu_vs_bare),
            if r.errors == 0 {
                "0".to_owned()
            } else {
                format!("**{}**", r.errors)
            },
        );
    }
    out
}

/// Escapes text for SVG.
pub(crate) fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar chart per mode: the median rate of each server, a whisker from the lowest to
/// the highest round, the ratio to bare and any errors.
pub(crate) fn svg(report: &Report) -> String {
    /// The chart's width.
    const WIDTH: f64 = 930.0;
    /// Where the bars start, after the server names.
    const LABEL: f64 = 70.0;
    /// The length of the longest bar.
    const BAR_AREA: f64 = 480.0;
    /// The height of one server's row.
    const ROW: f64 = 34.0;
    let modes: Vec<Mode> = report.options.modes.clone();
    let mut body = String::new();
    let mut y = 66.0;
    for mode in modes {
        let rows: Vec<&Summary> = report.results.iter().filter(|r| r.mode == mode).collect();
        if rows.is_empty() {
            continue;
        }
        let max = rows.iter().map(|r| r.max_rate).fold(0.0, f64::max).max(1.0);
        let title = match mode {
            Mode::Keepalive => format!(
                "keep-alive: requests/s over {} connections (higher is better)",
                report.options.connections
            ),
            Mode::Handshake => format!(
                "handshake: new mutual-TLS connections/s, {} workers (higher is better)",
                report.options.connections
            ),
        };
        let _ = writeln!(
            body,
            r#"<text x="10" y="{y:.0}" font-weight="bold">{}</text>"#,
            xml_escape(&title)
        );
        y += 12.0;
        for r in rows {
            let bar = r.median_rate / max * BAR_AREA;
            let lo = LABEL + r.min_rate / max * BAR_AREA;
            let hi = LABEL + r.max_rate / max * BAR_AREA;
            let mid = y + ROW / 2.0 - 4.0;
            let mut label = format!(
                "{} {} · p50 {:.2} ms · p99 {:.2} ms",
                thousands(r.median_rate),
                r.unit,
                r.p50_ms,
                r.p99_ms
            );
            if let Some(ratio) = r.ratio_vs_bare {
                let _ = write!(label, " · ×{ratio:.3} bare");
            }
            let _ = writeln!(
                body,
                r#"<text x="{:.0}" y="{:.0}" text-anchor="end">{}</text>"#,
                LABEL - 8.0,
                mid + 4.0,
                r.server.name()
            );
            let _ = writeln!(
                body,
                r#"<rect x="{LABEL}" y="{:.0}" width="{bar:.1}" height="{:.0}" fill="{}"/>"#,
                y + 4.0,
                ROW - 14.0,
                r.server.color()
            );
            let _ = writeln!(
                body,
                r#"<line x1="{lo:.1}" y1="{mid:.1}" x2="{hi:.1}" y2="{mid:.1}" stroke="black"/><line x1="{lo:.1}" y1="{:.1}" x2="{lo:.1}" y2="{:.1}" stroke="black"/><line x1="{hi:.1}" y1="{:.1}" x2="{hi:.1}" y2="{:.1}" stroke="black"/>"#,
                mid - 4.0,
                mid + 4.0,
                mid - 4.0,
                mid + 4.0
            );
            let _ = writeln!(
                body,
                r#"<text x="{:.0}" y="{:.0}">{}</text>"#,
                LABEL + BAR_AREA + 10.0,
                mid + 4.0,
                xml_escape(&label)
            );
            if r.errors > 0 {
                let _ = writeln!(
                    body,
                    r##"<text x="{:.0}" y="{:.0}" fill="#d62728" font-weight="bold">{} errors</text>"##,
                    LABEL + 4.0,
                    mid + 4.0,
                    r.errors
                );
            }
            y += ROW;
        }
        y += 26.0;
    }
    let height = y + 10.0;
    let title = format!(
        "mutual TLS load test: {}",
        report
            .results
            .iter()
            .map(|r| r.server.name())
            .fold(Vec::new(), |mut names, n| {
                if !names.contains(&n) {
                    names.push(n);
                }
                names
            })
            .join(", ")
    );
    let subtitle = format!(
        "median of {} rounds of {} s per server (whisker: lowest to highest round); client and servers share {} CPU(s) on 127.0.0.1",
        report.options.rounds, report.options.seconds, report.cpus
    );
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0}" height="{height:.0}" viewBox="0 0 {WIDTH:.0} {height:.0}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="20" font-size="15" font-weight="bold">{}</text>
<text x="10" y="38" fill="#555">{}</text>
{body}</svg>
"##,
        xml_escape(&title),
        xml_escape(&subtitle)
    )
}
