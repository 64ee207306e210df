//! The Ledgerlink desktop app (see `ledgerlink_desktop`).

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    ledgerlink_desktop::run();
}
