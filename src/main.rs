//! The `x1-validate` binary: parse the command line, run, map the outcome onto the exit code.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use x1_validate::Error;
use x1_validate::cli::{Cli, normalize_args};
use x1_validate::report::mask;

/// An error whose message, help and source chain are shown masked ([`mask`]), with the rule-file
/// snippets (not image text) of the original.
#[derive(Debug)]
struct MaskedError<'a>(&'a Error);

impl std::fmt::Display for MaskedError<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&mask(&self.0.to_string()))
    }
}

impl std::error::Error for MaskedError<'_> {}

impl miette::Diagnostic for MaskedError<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        self.0.code()
    }
    fn help<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        self.0
            .help()
            .map(|h| Box::new(mask(&h.to_string()).into_owned()) as Box<dyn std::fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.0.source_code()
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.0.labels()
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(normalize_args(std::env::args_os())) {
        Ok(cli) => cli,
        Err(e) => {
            // help/version go to stdout with 0; usage errors to stderr with 2.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    x1_validate::image::source::set_max_input_size(cli.max_input_size);
    x1_validate::image::registry::set_insecure(cli.insecure);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = cli.command.run(&mut out);
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

/// Render an error with miette on stderr and return its exit code. The text goes through the masking
/// chokepoint (an error may quote a hostile document's key or path), so it is rendered without colour
/// when stderr is not a terminal, and masked line by line.
fn report(e: &Error) -> ExitCode {
    let color = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let handler = miette::GraphicalReportHandler::new_themed(if color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    })
    .with_width(100);
    // Masked before rendering: the message may quote image text.
    let masked = MaskedError(e);
    let mut text = String::new();
    if handler.render_report(&mut text, &masked).is_err() {
        text = format!("error: {}\n", mask(&e.to_string()));
    }
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
    ExitCode::from(e.exit_code())
}
