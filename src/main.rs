//! The `x1-validate` binary: parse the command line, run, map the outcome onto the exit code.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use x1_validate::cli::{Cli, normalize_args};
use x1_validate::{Error, commands};

fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(normalize_args(std::env::args_os())) {
        Ok(cli) => cli,
        Err(e) => {
            // help/version go to stdout with 0; usage errors to stderr with 2.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    x1_validate::image::registry::set_insecure(cli.insecure);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = commands::run(&cli.command, &mut out);
    let flushed = out.flush();
    match result {
        Ok(code) => match flushed {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                report(&Error::output("<stdout>", e))
            }
            _ => ExitCode::from(code),
        },
        Err(Error::Io {
            source,
            output: true,
            ..
        }) if source.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

/// Render an error with miette on stderr and return its exit code.
fn report(e: &Error) -> ExitCode {
    let color = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let handler = miette::GraphicalReportHandler::new_themed(if color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    })
    .with_width(100);
    let mut text = String::new();
    if handler.render_report(&mut text, e).is_err() {
        text = format!("error: {e}\n");
    }
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
    ExitCode::from(e.exit_code())
}
