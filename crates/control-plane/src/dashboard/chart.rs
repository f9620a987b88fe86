//! Traffic charts drawn on the server as standalone SVG documents, so the dashboard shows
//! real graphs in a plain `<img>` without running a script in the browser.
//!
//! A [`Chart`] is a title, a unit, the step times and a few lines of values; [`requests`]
//! and [`latency`] build one from a metrics view, and [`render`] lays it out. All text goes
//! through the template's escaping; only numbers are formatted here.

use std::fmt;

use askama::Template;
use chrono::{DateTime, Utc};

use crate::http::metrics::{Figures, MetricsView};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 280.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = WIDTH - 24.0;
const TOP: f64 = 56.0;
const BOTTOM: f64 = HEIGHT - 32.0;
/// Most time labels under the x axis; they stay at least 90 px apart.
const MAX_TIME_LABELS: i64 = 7;
/// Above this range, times are labelled by date instead of by time of day.
const TIME_OF_DAY_UP_TO: i64 = 2 * 86_400;
/// Label steps tried in turn, in seconds.
const TIME_STEPS: [i64; 14] = [
    60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 172_800, 604_800,
];

/// What a chart's values measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Requests in each step of `step` seconds.
    Requests { step: i64 },
    /// Milliseconds.
    Milliseconds,
}

impl Unit {
    fn caption(self) -> String {
        match self {
            Unit::Requests { step } => format!("requests per {}", step_name(step)),
            Unit::Milliseconds => "milliseconds".to_owned(),
        }
    }

    /// The smallest tick step worth showing: no fractions of a request.
    fn min_tick(self) -> f64 {
        match self {
            Unit::Requests { .. } => 1.0,
            Unit::Milliseconds => 0.001,
        }
    }
}

fn step_name(secs: i64) -> String {
    match secs {
        60 => "minute".to_owned(),
        3600 => "hour".to_owned(),
        86_400 => "day".to_owned(),
        s if s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s % 3600 == 0 => format!("{} hours", s / 3600),
        s if s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

/// The fixed palette, each colour readable on white and told apart from the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Blue,
    Amber,
    Red,
    Teal,
    Purple,
}

impl Colour {
    /// The CSS class the SVG's stylesheet gives this colour.
    pub fn class(self) -> &'static str {
        match self {
            Colour::Blue => "s1",
            Colour::Amber => "s2",
            Colour::Red => "s3",
            Colour::Teal => "s4",
            Colour::Purple => "s5",
        }
    }
}

/// One line of a chart: a value per step time, `None` where there is nothing to draw.
#[derive(Debug, Clone)]
pub struct Line {
    pub label: String,
    pub colour: Colour,
    pub values: Vec<Option<f64>>,
}

/// A time-series chart, ready to [`render`].
#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub unit: Unit,
    /// The start of each step; `values[i]` of every line belongs to `times[i]`.
    pub times: Vec<DateTime<Utc>>,
    pub lines: Vec<Line>,
}

fn line(
    view: &MetricsView,
    label: &str,
    colour: Colour,
    value: fn(&Figures) -> Option<f64>,
) -> Line {
    Line {
        label: label.to_owned(),
        colour,
        values: view.points.iter().map(|p| value(&p.figures)).collect(),
    }
}

/// Requests, 4XX and 5XX errors in each step of `view`.
pub fn requests(view: &MetricsView, title: impl Into<String>) -> Chart {
    Chart {
        title: title.into(),
        unit: Unit::Requests { step: view.step },
        times: view.points.iter().map(|p| p.time).collect(),
        lines: vec![
            line(view, "Requests", Colour::Blue, |f| Some(f.count as f64)),
            line(view, "4XX errors", Colour::Amber, |f| {
                Some(f.errors_4xx as f64)
            }),
            line(view, "5XX errors", Colour::Red, |f| {
                Some(f.errors_5xx as f64)
            }),
        ],
    }
}

/// The median and 99th percentile latency in each step of `view`, with gaps where no
/// request was served.
pub fn latency(view: &MetricsView, title: impl Into<String>) -> Chart {
    Chart {
        title: title.into(),
        unit: Unit::Milliseconds,
        times: view.points.iter().map(|p| p.time).collect(),
        lines: vec![
            line(view, "p50", Colour::Teal, |f| {
                f.latency_ms.as_ref().map(|l| l.p50)
            }),
            line(view, "p99", Colour::Purple, |f| {
                f.latency_ms.as_ref().map(|l| l.p99)
            }),
        ],
    }
}

/// The chart as a complete SVG document.
pub fn render(chart: &Chart) -> Result<String, askama::Error> {
    Svg::new(chart).render()
}

/// A coordinate, written to one decimal place.
#[derive(Debug, Clone, Copy)]
struct Px(f64);

impl fmt::Display for Px {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Adding zero turns -0 into 0.
        write!(f, "{}", (self.0 * 10.0).round() / 10.0 + 0.0)
    }
}

/// Where things go, for the template.
struct Frame {
    width: Px,
    height: Px,
    left: Px,
    right: Px,
    bottom: Px,
    /// The middle of the plot area.
    centre: (Px, Px),
    /// Baselines: of the title and legend, of the unit caption, of the time labels.
    title_y: Px,
    caption_y: Px,
    time_y: Px,
    /// Where the title and caption start, and where the value labels end.
    edge: Px,
    value_x: Px,
    /// The lower end of the marks under the x axis.
    mark_end: Px,
}

const FRAME: Frame = Frame {
    width: Px(WIDTH),
    height: Px(HEIGHT),
    left: Px(LEFT),
    right: Px(RIGHT),
    bottom: Px(BOTTOM),
    centre: (Px((LEFT + RIGHT) / 2.0), Px((TOP + BOTTOM) / 2.0)),
    title_y: Px(22.0),
    caption_y: Px(TOP - 14.0),
    time_y: Px(BOTTOM + 20.0),
    edge: Px(12.0),
    value_x: Px(LEFT - 8.0),
    mark_end: Px(BOTTOM + 5.0),
};

struct Tick {
    at: Px,
    label: String,
}

struct Series {
    class: &'static str,
    /// The `points` of one polyline per run of values without a gap.
    runs: Vec<String>,
    /// Values alone between two gaps, drawn as dots.
    dots: Vec<(Px, Px)>,
}

struct Key<'a> {
    x: Px,
    label: &'a str,
    class: &'static str,
}

// `.svg` templates get askama's HTML escaper by default, which is also right for XML;
// a test below proves it.
#[derive(Template)]
#[template(path = "chart.svg")]
struct Svg<'a> {
    f: &'static Frame,
    title: &'a str,
    caption: String,
    y_ticks: Vec<Tick>,
    x_ticks: Vec<Tick>,
    series: Vec<Series>,
    legend: Vec<Key<'a>>,
    empty: bool,
}

impl<'a> Svg<'a> {
    fn new(chart: &'a Chart) -> Svg<'a> {
        let max = chart
            .lines
            .iter()
            .flat_map(|l| l.values.iter().flatten())
            .copied()
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        let ticks = nice_ticks(max, chart.unit.min_tick());
        let top = ticks.last().copied().unwrap_or(1.0);
        let y = |v: f64| BOTTOM - v.clamp(0.0, top) / top * (BOTTOM - TOP);
        let (first, last) = match (chart.times.first(), chart.times.last()) {
            (Some(first), Some(last)) => (*first, *last),
            _ => (DateTime::UNIX_EPOCH, DateTime::UNIX_EPOCH),
        };
        let span = (last - first).num_seconds();
        let x = |t: DateTime<Utc>| match span {
            0 => (LEFT + RIGHT) / 2.0,
            _ => LEFT + (t - first).num_seconds() as f64 / span as f64 * (RIGHT - LEFT),
        };
        let empty = max <= 0.0;
        let series = if empty {
            Vec::new()
        } else {
            let xs: Vec<f64> = chart.times.iter().map(|t| x(*t)).collect();
            chart.lines.iter().map(|l| series(l, &xs, y)).collect()
        };
        let mut key_x = RIGHT;
        let mut legend: Vec<Key> = chart
            .lines
            .iter()
            .rev()
            .map(|l| {
                // A swatch, a gap, then roughly 7 px a character of 12 px text.
                key_x -= 20.0 + 7.0 * l.label.chars().count() as f64;
                let key = Key {
                    x: Px(key_x),
                    label: &l.label,
                    class: l.colour.class(),
                };
                key_x -= 16.0;
                key
            })
            .collect();
        legend.reverse();
        Svg {
            f: &FRAME,
            title: &chart.title,
            caption: chart.unit.caption(),
            y_ticks: ticks
                .iter()
                .map(|v| Tick {
                    at: Px(y(*v)),
                    label: compact(*v),
                })
                .collect(),
            x_ticks: time_ticks(first, last)
                .into_iter()
                .map(|(t, label)| Tick {
                    at: Px(x(t)),
                    label,
                })
                .collect(),
            series,
            legend,
            empty,
        }
    }
}

/// The runs of `line` between its gaps, at `xs` across.
fn series(line: &Line, xs: &[f64], y: impl Fn(f64) -> f64) -> Series {
    let mut series = Series {
        class: line.colour.class(),
        runs: Vec::new(),
        dots: Vec::new(),
    };
    let mut run: Vec<(Px, Px)> = Vec::new();
    let values = line.values.iter().map(|v| v.filter(|v| v.is_finite()));
    for point in xs
        .iter()
        .zip(values)
        .map(|(x, v)| v.map(|v| (Px(*x), Px(y(v)))))
        .chain([None])
    {
        match point {
            Some(p) => run.push(p),
            None if run.len() == 1 => series.dots.append(&mut run),
            None if run.len() > 1 => {
                let points: Vec<String> = run.drain(..).map(|(x, y)| format!("{x},{y}")).collect();
                series.runs.push(points.join(" "));
            }
            None => {}
        }
    }
    series
}

/// Ticks from 0 to at least `max`, about five of them, in steps of 1, 2 or 5 times a power
/// of ten and never finer than `min_step`. An empty chart gets 0 to 4.
fn nice_ticks(max: f64, min_step: f64) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        4.0
    };
    let rough = max / 5.0;
    let magnitude = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * magnitude)
        .max(min_step);
    // The small allowance keeps 0.3 / 0.1 from making a tick too many.
    let count = ((max / step) - 1e-9).ceil().max(1.0) as u32;
    (0..=count).map(|i| f64::from(i) * step).collect()
}

/// A short label: `0.25`, `12`, `1.5k`, `3.4M`.
fn compact(v: f64) -> String {
    let (scaled, suffix) = match v.abs() {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let decimals = match scaled.abs() {
        a if a >= 10.0 => 0,
        a if a >= 1.0 => 1,
        _ => 3,
    };
    let mut text = format!("{scaled:.decimals$}");
    if text.contains('.') {
        text.truncate(text.trim_end_matches('0').trim_end_matches('.').len());
    }
    text + suffix
}

/// Evenly spaced labels at round times between `first` and `last`: the time of day for
/// ranges up to two days, the date beyond.
fn time_ticks(first: DateTime<Utc>, last: DateTime<Utc>) -> Vec<(DateTime<Utc>, String)> {
    let span = (last - first).num_seconds().max(0);
    let step = TIME_STEPS
        .into_iter()
        .find(|s| span / s < MAX_TIME_LABELS)
        .unwrap_or_else(|| (span / (MAX_TIME_LABELS - 1) / 86_400 + 1) * 86_400);
    let format = if span <= TIME_OF_DAY_UP_TO {
        "%H:%M"
    } else {
        "%b %-d"
    };
    // The first multiple of the step at or after `first`.
    let start = (first.timestamp() + step - 1).div_euclid(step) * step;
    (start..=last.timestamp())
        .step_by(usize::try_from(step).unwrap_or(86_400))
        .filter_map(|secs| DateTime::from_timestamp(secs, 0))
        .map(|t| (t, t.format(format).to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::metrics::{LatencyFigures, Point};

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn figures(count: u64, errors_4xx: u64, errors_5xx: u64) -> Figures {
        let latency = |base: f64| LatencyFigures {
            p50: base,
            p90: base * 2.0,
            p99: base * 4.0,
            min: base / 2.0,
            max: base * 8.0,
            avg: base * 1.5,
        };
        Figures {
            count,
            errors_4xx,
            errors_5xx,
            bytes_in: count * 300,
            bytes_out: count * 2000,
            latency_ms: (count > 0).then(|| latency(10.0 + (count % 7) as f64)),
            integration_latency_ms: None,
        }
    }

    /// An hour by minute from 12:00 UTC, with the counts given.
    fn view(counts: &[u64]) -> MetricsView {
        let from = at("2026-11-24T12:00:00Z");
        let points: Vec<Point> = counts
            .iter()
            .enumerate()
            .map(|(i, count)| Point {
                time: from + chrono::Duration::minutes(i as i64),
                figures: figures(*count, count / 10, count / 50),
            })
            .collect();
        MetricsView {
            from,
            to: from + chrono::Duration::minutes(counts.len() as i64),
            step: 60,
            totals: figures(counts.iter().sum(), 0, 0),
            points,
        }
    }

    /// The `points` attribute of every polyline, in order.
    fn polylines(svg: &str) -> Vec<Vec<&str>> {
        svg.split("<polyline points=\"")
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap_or("").split(' ').collect())
            .collect()
    }

    /// Checks that every element is closed in order; enough to tell a broken document.
    fn assert_balanced(svg: &str) {
        let mut open: Vec<&str> = Vec::new();
        for tag in svg.split('<').skip(1) {
            let tag = tag.split('>').next().expect("a closed tag");
            let name = tag
                .trim_start_matches('/')
                .split([' ', '/'])
                .next()
                .unwrap_or("");
            if tag.starts_with('/') {
                assert_eq!(open.pop(), Some(name), "closing {name}");
            } else if !tag.ends_with('/') {
                open.push(name);
            }
        }
        assert!(open.is_empty(), "left open: {open:?}");
    }

    #[test]
    fn ticks_step_by_one_two_or_five_from_zero() {
        assert_eq!(nice_ticks(0.0, 1.0), [0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(nice_ticks(7.0, 1.0), [0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(
            nice_ticks(1.0, 1.0),
            [0.0, 1.0],
            "no fractions of a request"
        );
        assert_eq!(nice_ticks(0.3, 0.001).len(), 4, "0, 0.1, 0.2, 0.3");
        let ticks = nice_ticks(1234.0, 1.0);
        assert!(ticks.iter().all(|t| t % 100.0 == 0.0), "{ticks:?}");
        assert!((3..=7).contains(&ticks.len()), "{ticks:?}");
        assert!(ticks
            .last()
            .is_some_and(|top| *top >= 1234.0 && *top < 2000.0));
    }

    #[test]
    fn numbers_are_labelled_compactly() {
        let labels: Vec<String> = [0.0, 0.4, 0.05, 1.5, 12.0, 999.0, 1200.0, 1500.0, 15_000.0]
            .into_iter()
            .chain([3_400_000.0, 2e9])
            .map(compact)
            .collect();
        assert_eq!(
            labels,
            ["0", "0.4", "0.05", "1.5", "12", "999", "1.2k", "1.5k", "15k", "3.4M", "2G"]
        );
    }

    #[test]
    fn times_are_labelled_by_time_of_day_up_to_two_days_and_by_date_beyond() {
        let hour = time_ticks(at("2026-11-24T12:00:00Z"), at("2026-11-24T12:59:00Z"));
        let labels: Vec<&str> = hour.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(
            labels,
            ["12:00", "12:10", "12:20", "12:30", "12:40", "12:50"]
        );
        let days = time_ticks(at("2026-11-24T12:00:00Z"), at("2026-11-25T23:00:00Z"));
        assert!(days.iter().all(|(_, l)| l.len() == 5 && l.contains(':')));
        let week = time_ticks(at("2026-11-20T00:00:00Z"), at("2026-11-27T00:00:00Z"));
        let labels: Vec<&str> = week.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["Nov 21", "Nov 23", "Nov 25", "Nov 27"]);
        for ticks in [hour, days, week] {
            assert!((2..=MAX_TIME_LABELS as usize).contains(&ticks.len()));
        }
    }

    #[test]
    fn a_chart_is_a_whole_svg_document_with_a_line_and_a_key_for_each_series() {
        let view = view(&[120, 80, 0, 95, 300, 250, 40]);
        let svg = render(&requests(&view, "Traffic")).expect("renders");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_balanced(&svg);
        assert!(svg.contains("<title>Traffic</title>") && svg.contains("role=\"img\""));
        let lines = polylines(&svg);
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|points| points.len() == 7), "{lines:?}");
        for label in [
            "Requests",
            "4XX errors",
            "5XX errors",
            "requests per minute",
        ] {
            assert!(svg.contains(&format!(">{label}</text>")), "{label}");
        }
        assert!(!svg.contains("No traffic"));
    }

    #[test]
    fn latency_has_gaps_where_there_was_no_traffic() {
        let view = view(&[10, 20, 0, 0, 30, 40, 50, 0, 60]);
        let svg = render(&latency(&view, "Latency")).expect("renders");
        assert_balanced(&svg);
        let lengths: Vec<usize> = polylines(&svg).iter().map(Vec::len).collect();
        assert_eq!(lengths, [2, 3, 2, 3], "p50 then p99, each in two runs");
        assert_eq!(
            svg.matches("<circle").count(),
            2,
            "the lone last value of each"
        );
        assert!(svg.contains(">p50</text>") && svg.contains(">p99</text>"));
    }

    #[test]
    fn a_period_without_traffic_says_so_over_empty_axes() {
        for chart in [
            requests(&view(&[0; 30]), "R"),
            latency(&view(&[0; 30]), "L"),
        ] {
            let svg = render(&chart).expect("renders");
            assert_balanced(&svg);
            assert!(svg.contains(">No traffic in this period</text>"));
            assert!(polylines(&svg).is_empty());
            assert!(svg.contains("class=\"grid\"") && svg.contains(">12:00</text>"));
        }
    }

    #[test]
    fn titles_and_labels_are_escaped() {
        let mut chart = requests(&view(&[1, 2]), "<script>&\"");
        chart.lines[0].label = "<b>".to_owned();
        let svg = render(&chart).expect("renders");
        assert!(!svg.contains("<script>") && !svg.contains("<b>"));
        assert!(
            svg.contains("<title>&#60;script&#62;&#38;&#34;</title>"),
            "{svg}"
        );
        assert!(svg.contains(">&#60;b&#62;</text>"));
        assert_balanced(&svg);
    }
}
