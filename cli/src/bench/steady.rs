//! `bench steady`: day 1 and day 2 of a snapshot history (`history`) landed one after the other
//! in the same world through all five services, each day's last PUT → exported against `psql
//! \copy` of that day's three files into typed tables with keys. Day 2 holds everything day 1
//! holds plus a few percent new or changed rows, so it shows whether a day costs what changed
//! or what the shop has ever sold. Ends with each service's peak memory over both days.

use chrono::NaiveDate;

use super::batch::put_and_wait;
use super::history::History;
use super::memory::proc_status_kib;
use super::{BenchArgs, BenchEnv, Figure, Report, psql_copy_into_new_tables};

/// The first day of the history (a Monday).
const DAY_ONE: (i32, u32, u32) = (2026, 11, 2);

pub(super) async fn bench_steady(env: &BenchEnv, args: &BenchArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.orders >= 100, "--orders must be at least 100");
    anyhow::ensure!(
        args.reviews_per_order >= 0.0 && args.reviews_per_order <= 100.0,
        "--reviews-per-order must be between 0 and 100"
    );
    anyhow::ensure!(
        args.change > 0.0 && args.change <= 100.0,
        "--change is a percentage: more than 0, at most 100"
    );
    let history = History {
        orders: args.orders,
        reviews_per_order: args.reviews_per_order,
        change: args.change / 100.0,
        day1: NaiveDate::from_ymd_opt(DAY_ONE.0, DAY_ONE.1, DAY_ONE.2).expect("a date"),
    };
    let day1 = history.write_day(&env.work_dir.join("day1"), 1)?;
    let day2 = history.write_day(&env.work_dir.join("day2"), 2)?;
    println!("Day 1         {}: {}", history.day1, day1.described());
    println!("Day 2         {}: {}", history.day2(), day2.described());
    let psql1 = psql_copy_into_new_tables(env, &day1.files).await?;
    let psql2 = psql_copy_into_new_tables(env, &day2.files).await?;
    println!("psql \\copy    day 1's three files {psql1:.2}s, day 2's {psql2:.2}s");

    let mut services = env.start_pipeline().await?;
    let measured = async {
        let one = put_and_wait(env, &mut services, &day1.files, history.day1).await?;
        println!(
            "Day 1         last PUT → exported {:.2}s ({:.2}× psql; {})",
            one.from_last_put,
            one.from_last_put / psql1,
            one.stages
        );
        let two = put_and_wait(env, &mut services, &day2.files, history.day2()).await?;
        println!(
            "Day 2         last PUT → exported {:.2}s ({:.2}× psql; {})",
            two.from_last_put,
            two.from_last_put / psql2,
            two.stages
        );
        let mut peaks = Vec::new();
        for stage in runtime::Stage::ALL {
            if let Some(pid) = services.pid(stage.name()) {
                peaks.push((stage.name(), proc_status_kib(pid, "VmHWM")? as f64 / 1024.0));
            }
        }
        anyhow::Ok((one, two, peaks))
    }
    .await;
    services.stop().await;
    let (one, two, peaks) = measured?;
    let peaks_described: Vec<String> = peaks
        .iter()
        .map(|(name, mib)| format!("{name} {mib:.1} MiB"))
        .collect();
    println!("Peak RSS      {}", peaks_described.join(", "));
    let stager_peak = peaks
        .iter()
        .find(|(name, _)| *name == "stager")
        .map_or(f64::NAN, |(_, mib)| *mib);

    let label = |day: u8| format!("psql \\copy of day {day}'s three files into keyed tables");
    Ok(Report {
        bench: "steady",
        params: vec![
            ("orders", args.orders.to_string()),
            ("reviews_per_order", args.reviews_per_order.to_string()),
            ("change_percent", args.change.to_string()),
            ("day1_rows", day1.described()),
            ("day2_rows", day2.described()),
            ("day1_psql_seconds", format!("{psql1:.3}")),
            ("day2_psql_seconds", format!("{psql2:.3}")),
            ("day1_stages", one.stages),
            ("day2_stages", two.stages),
            ("peak_rss", peaks_described.join(", ")),
            ("services", "the five service binaries as processes".into()),
        ],
        figures: vec![
            Figure {
                figure: "day 2: last PUT → exported".into(),
                unit: "s",
                value: two.from_last_put,
                baseline: Some(psql2),
                baseline_label: label(2),
                goal: Some(("≤ 1× baseline".into(), two.from_last_put <= psql2)),
            },
            Figure {
                figure: "day 1: last PUT → exported".into(),
                unit: "s",
                value: one.from_last_put,
                baseline: Some(psql1),
                baseline_label: label(1),
                goal: Some(("≤ 2.5× baseline".into(), one.from_last_put <= 2.5 * psql1)),
            },
            Figure {
                figure: "stager peak RSS (VmHWM), both days".into(),
                unit: "MiB",
                value: stager_peak,
                baseline: None,
                baseline_label: String::new(),
                goal: Some(("≤ 64 MiB".into(), stager_peak <= 64.0)),
            },
        ],
    })
}
