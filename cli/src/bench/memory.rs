//! `bench memory`: the stager's peak RSS while it loads a large CSV.

use anyhow::Context as _;

use super::stage::{Limit, stage_one, write_orders};
use super::{BenchArgs, BenchEnv, Figure, Report};

pub(super) async fn bench_memory(env: &BenchEnv, args: &BenchArgs) -> anyhow::Result<Report> {
    let csv = env.work_dir.join("orders.csv");
    let generated = write_orders(&csv, Limit::Bytes(args.bytes))?;
    println!(
        "Generated     {} rows, {:.1} MiB in {}",
        generated.rows,
        generated.bytes as f64 / MIB,
        csv.display()
    );
    let mut services = env.start_services(&["ingester", "stager"]).await?;
    let measured = async {
        let pid = services
            .pid("stager")
            .context("the stager has no process id")?;
        let idle = proc_status_kib(pid, "VmRSS")? as f64 / 1024.0;
        let staged = stage_one(env, &mut services, &csv, "2026-11-25").await?;
        let peak = proc_status_kib(pid, "VmHWM")? as f64 / 1024.0;
        anyhow::Ok((idle, peak, staged))
    }
    .await;
    services.stop().await;
    let (idle, peak, staged) = measured?;
    std::fs::remove_file(&csv)?;
    println!(
        "Stager        idle RSS {idle:.1} MiB, peak RSS {peak:.1} MiB, {} rows in {:.1}s",
        staged.rows_loaded, staged.stager_s
    );
    Ok(Report {
        bench: "memory",
        params: vec![
            ("bytes", generated.bytes.to_string()),
            ("rows", generated.rows.to_string()),
            ("rows_loaded", staged.rows_loaded.to_string()),
            ("rows_rejected", staged.rows_rejected.to_string()),
            ("stager_seconds", format!("{:.3}", staged.stager_s)),
            (
                "stager",
                "stager binary as a process; /proc/<pid>/status".into(),
            ),
        ],
        figures: vec![
            Figure {
                figure: "stager peak RSS (VmHWM)".into(),
                unit: "MiB",
                value: peak,
                baseline: Some(idle),
                baseline_label: "the stager's RSS when idle, before the load".into(),
                goal: Some(("≤ 64 MiB".into(), peak <= 64.0)),
            },
            Figure {
                figure: "stage rows/s of the large file".into(),
                unit: "rows/s",
                value: staged.rows_loaded as f64 / staged.stager_s,
                baseline: None,
                baseline_label: String::new(),
                goal: None,
            },
        ],
    })
}

const MIB: f64 = 1024.0 * 1024.0;

/// A `kB` field of /proc/<pid>/status, e.g. VmRSS or VmHWM.
pub(super) fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| {
            line.strip_prefix(field)
                .and_then(|rest| rest.strip_prefix(':'))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}
