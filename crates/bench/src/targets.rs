//! The bar: every threshold the report judges a figure by, and the open-loop rate it is measured
//! at, in one table ([`TARGETS`]). It is the table "The bar" of `docs/PERFORMANCE.md` in code:
//! change one, change the other.
//!
//! The scenarios look their figure up here ([`Target::bar`], [`Target::rate`]) and hand the bar
//! to the report, which prints it beside the figure and says whether it is met. Slowness never
//! fails the command; only correctness does.

use super::report::Bar;

/// A figure the bar has a line for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Figure {
    /// `ingest`: acknowledged messages per second at the best concurrency (closed loop).
    IngestPeak,
    /// `ingest`: webhook ack p99 (open loop).
    IngestAck,
    /// `list`: p99 of any filter and page (open loop).
    List,
    /// `list`: the default page's peak (closed loop).
    ListPeak,
    /// `thread`: p99 of the newest 50 messages (open loop).
    Thread,
    /// `actions`: p99 of assign, handover and read (open loop).
    Action,
    /// `send`: p99 of a text reply through the fake Kapso answering in 5 ms (open loop).
    Send,
    /// `fanout`: commit-to-client p99, 100 clients, one process.
    FanoutInProcess,
    /// `fanout`: commit in `inbox-webhook` to an `inbox-api` client, p99.
    FanoutAcrossProcesses,
    /// `connections`: `inbox-api`'s resident memory with the idle streams open.
    IdleStreams,
    /// `growth`: the default list page's p99 at this size over its p99 at `10k`.
    Growth,
}

/// One line of the bar.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The figure it judges.
    pub figure: Figure,
    /// The open-loop arrival rate the figure is measured at (per second), on PostgreSQL and on
    /// SQLite; `None` for figures that are not measured at a fixed rate.
    pub rate: Option<(f64, f64)>,
    /// The bar on PostgreSQL.
    pub postgres: Bar,
    /// The bar on SQLite.
    pub sqlite: Bar,
}

/// The bar (2 cores, load generator on the same machine), as `docs/PERFORMANCE.md` states it.
pub const TARGETS: &[Target] = &[
    Target {
        figure: Figure::IngestPeak,
        rate: None,
        postgres: Bar::AtLeast(3_000.0),
        sqlite: Bar::AtLeast(2_000.0),
    },
    Target {
        figure: Figure::IngestAck,
        rate: Some((2_000.0, 1_000.0)),
        postgres: Bar::AtMostMs(5.0),
        sqlite: Bar::AtMostMs(10.0),
    },
    Target {
        figure: Figure::List,
        rate: Some((5_000.0, 2_000.0)),
        postgres: Bar::AtMostMs(2.0),
        sqlite: Bar::AtMostMs(2.0),
    },
    Target {
        figure: Figure::ListPeak,
        rate: None,
        postgres: Bar::AtLeast(8_000.0),
        sqlite: Bar::None,
    },
    Target {
        figure: Figure::Thread,
        rate: Some((5_000.0, 2_000.0)),
        postgres: Bar::AtMostMs(2.0),
        sqlite: Bar::AtMostMs(2.0),
    },
    Target {
        figure: Figure::Action,
        rate: Some((2_000.0, 500.0)),
        postgres: Bar::AtMostMs(3.0),
        sqlite: Bar::AtMostMs(5.0),
    },
    Target {
        figure: Figure::Send,
        rate: Some((500.0, 500.0)),
        postgres: Bar::AtMostMs(15.0),
        sqlite: Bar::AtMostMs(15.0),
    },
    Target {
        figure: Figure::FanoutInProcess,
        rate: None,
        postgres: Bar::AtMostMs(5.0),
        sqlite: Bar::AtMostMs(5.0),
    },
    Target {
        figure: Figure::FanoutAcrossProcesses,
        rate: None,
        postgres: Bar::AtMostMs(50.0),
        sqlite: Bar::AtMostMs(50.0),
    },
    Target {
        figure: Figure::IdleStreams,
        rate: None,
        postgres: Bar::AtMostMib(256.0),
        sqlite: Bar::AtMostMib(256.0),
    },
    Target {
        figure: Figure::Growth,
        rate: None,
        postgres: Bar::AtMostRatio(1.5),
        sqlite: Bar::AtMostRatio(1.5),
    },
];

impl Target {
    /// The line of `figure` (every figure has one: a test checks it).
    pub fn of(figure: Figure) -> Option<&'static Self> {
        TARGETS.iter().find(|t| t.figure == figure)
    }

    /// The bar of `figure` on PostgreSQL (`postgres`) or SQLite.
    pub fn bar(figure: Figure, postgres: bool) -> Bar {
        Self::of(figure).map_or(Bar::None, |t| if postgres { t.postgres } else { t.sqlite })
    }

    /// The open-loop rate `figure` is measured at on PostgreSQL (`postgres`) or SQLite.
    pub fn rate(figure: Figure, postgres: bool) -> f64 {
        Self::of(figure)
            .and_then(|t| t.rate)
            .map_or(0.0, |(pg, lite)| if postgres { pg } else { lite })
    }
}

#[cfg(test)]
mod tests {
    use super::{Figure, TARGETS, Target};

    #[test]
    fn every_figure_has_exactly_one_line() {
        let all = [
            Figure::IngestPeak,
            Figure::IngestAck,
            Figure::List,
            Figure::ListPeak,
            Figure::Thread,
            Figure::Action,
            Figure::Send,
            Figure::FanoutInProcess,
            Figure::FanoutAcrossProcesses,
            Figure::IdleStreams,
            Figure::Growth,
        ];
        for figure in all {
            let lines = TARGETS.iter().filter(|t| t.figure == figure).count();
            assert_eq!(lines, 1, "{figure:?}");
        }
        assert_eq!(TARGETS.len(), all.len());
        assert!(Target::rate(Figure::List, true) > Target::rate(Figure::List, false));
    }
}
