//! The `kiln` command line.

use anyhow::Result;
use clap::{Parser, Subcommand};
use kiln::build::{BuildOptions, build};
use kiln::pack::ArchiveCompression;
use kiln::recipe::RecipeError;
use kiln::ui::Ui;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes, documented in README.md.
mod exit {
    pub const FAILURE: u8 = 1;
    /// Usage errors exit 2 (clap's own code).
    pub const INVALID_RECIPE: u8 = 3;
}

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "Builds immutable, hardened, reproducible and signed OS images for K3s agent nodes",
    after_help = "Examples:\n  \
        kiln build recipes/minimal.toml -o dist\n  \
        kiln build recipes/minimal.toml --compression gzip\n  \
        kiln inspect dist/minimal-0.1.0.manifest.json\n  \
        kiln inspect dist/minimal-0.1.0.rootfs.tar.zst --json\n\n\
        Exit codes: 0 success, 1 failure, 2 usage error, 3 invalid recipe, \
        128+N killed by signal N (partial outputs removed)."
)]
struct Cli {
    /// Print only warnings and errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build a recipe into a rootfs archive and a manifest.
    #[command(after_help = "Examples:\n  kiln build recipes/minimal.toml\n  \
        SOURCE_DATE_EPOCH=1700000000 kiln build recipes/minimal.toml -o out --compression gzip\n\n\
        Outputs NAME-VERSION.rootfs.tar.zst (or .tar.gz) and NAME-VERSION.manifest.json \
        in the output directory; they appear only when complete.")]
    Build {
        /// The recipe file (TOML).
        recipe: PathBuf,
        /// Output directory.
        #[arg(short, long, default_value = "dist")]
        output: PathBuf,
        /// Compression of the rootfs archive.
        #[arg(long, value_enum, default_value_t = ArchiveCompression::Zstd)]
        compression: ArchiveCompression,
    },
    /// Summarise a manifest or a rootfs archive.
    #[command(
        after_help = "Examples:\n  kiln inspect dist/k3s-agent-1.0.0.manifest.json\n  \
        kiln inspect dist/k3s-agent-1.0.0.rootfs.tar.zst --json"
    )]
    Inspect {
        /// A NAME-VERSION.manifest.json or a rootfs tar (plain, gzip or zstd).
        path: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = kiln::cleanup::install_signal_handlers() {
        eprintln!("kiln: warning: cannot install signal handlers: {e}");
    }
    let ui = Ui::new(cli.quiet);
    match run(cli.command, &ui) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if let Some(recipe_error) = error.downcast_ref::<RecipeError>() {
                eprintln!("error: {}", recipe_error.render());
                return ExitCode::from(exit::INVALID_RECIPE);
            }
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(exit::FAILURE)
        }
    }
}

fn run(command: Command, ui: &Ui) -> Result<()> {
    match command {
        Command::Build {
            recipe,
            output,
            compression,
        } => {
            let out = build(
                &BuildOptions {
                    recipe,
                    out_dir: output,
                    compression,
                },
                ui,
            )?;
            for path in out.artifact_paths.iter().chain([&out.manifest_path]) {
                println!("{}", path.display());
            }
        }
        Command::Inspect { path, json } => {
            let summary = kiln::inspect::inspect(&path)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{}", summary.to_text());
            }
        }
    }
    Ok(())
}
