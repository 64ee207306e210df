//! What the app sets before WebKit starts, to keep its memory small on a modest till. Each setting
//! is a measured saving (docs/BENCHMARKS.md has the figures); each can be turned back.
//!
//! **The window's process off GL where there is no GPU.** WebKitGTK loads GL (EGL, and GLX through
//! GTK) in two processes: its web process, which paints the page, and the app's own process, which
//! puts the painted page on screen. With a GPU that is the fast path. Without one (a thin client, a
//! VM, Xvfb in CI) the GL is Mesa's software rasteriser, and in the app's process it buys nothing: it
//! only shows buffers the web process already painted on the CPU. Loading it still costs about
//! 25 MiB there (mostly LLVM, which Mesa links: relocated pages and symbol tables). So where there is
//! no DRM render node in `/dev/dri`, the app's process stays off GL: WebKit sees GL unavailable in
//! the UI process and has the web process paint into shared memory, which the window shows with
//! cairo (the same pixels). The web process keeps Mesa (it cannot start without EGL). How: glvnd's
//! `libEGL` reads its list of GL vendors once per process, at the first EGL call, from
//! `__EGL_VENDOR_LIBRARY_FILENAMES` when set; [`prepare`] sets it to a file that lists none, makes
//! that first call, and restores the variable straight away, before WebKit starts any process, so
//! the web process (started later with this environment) finds Mesa as usual. GTK's own GL probe at
//! start-up (GLX on X11) is switched off with `GDK_GL=disable` (overriding any value there). Where
//! `libEGL` is not glvnd's, the variable means nothing to it and the app leaves GL alone.
//! `LEDGERLINK_WINDOW_GL=on` keeps WebKit's defaults without a GPU, `off` keeps the app's process
//! off GL even with one, `auto` (the default) turns it off only without a render node and on X11:
//! the way tested here (Xvfb); a Wayland session keeps WebKit's defaults.
//!
//! **The page's JavaScript interpreted, not compiled.** The window's script is a few hundred lines
//! that wire forms and lists; JavaScriptCore's interpreter runs it without a visible difference, and
//! its JIT tiers (executable memory, compiled code) cost about 3.5 MiB in the web process. WebKit
//! reads `JSC_useJIT` when the web process starts; a value already in the environment is kept
//! (`JSC_useJIT=true` brings the JIT back).
//!
//! **glibc's malloc kept lean.** glibc gives busy threads their own arenas (up to eight per core),
//! each holding on to freed memory; the app's tokio and WebKit threads are mostly idle, so two are
//! plenty (`MALLOC_ARENA_MAX=2`). And once a large block is freed glibc raises its thresholds for
//! returning memory to the system, up to 32 MiB, so free memory stays resident after a burst (the
//! first sync of a busy till, a page of events); fixed thresholds of 128 KiB
//! (`MALLOC_TRIM_THRESHOLD_`, `MALLOC_MMAP_THRESHOLD_`, glibc's starting values) keep giving it
//! back. Each WebKit process reads these at start; this process, whose allocator is already
//! running, gets the same values through `mallopt`. A value already in the environment is kept.
//!
//! These settings are for WebKit's processes only: [`open_browser`] starts the system browser
//! through `xdg-open` with the environment as it was before [`prepare`], so a WebKit-based browser
//! does not inherit them (where `xdg-open` is missing, the `webbrowser` crate passes the environment
//! as it is).

// Most of this only runs on Linux; elsewhere `prepare` does nothing.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// Every variable [`prepare`] changed, with the value it had before (`None`: it was unset).
static CHANGED: Mutex<Vec<(&str, Option<OsString>)>> = Mutex::new(Vec::new());

/// What [`prepare`] did, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Prepared {
    /// The window's process stays off GL.
    pub window_gl_off: bool,
}

/// `LEDGERLINK_WINDOW_GL`, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowGl {
    Auto,
    On,
    Off,
}

impl WindowGl {
    /// Reads the setting; anything but `auto`, `on` or `off` is refused with what to write instead.
    pub(crate) fn parse(value: Option<&str>) -> Result<WindowGl, String> {
        match value.map(str::trim) {
            None | Some("") | Some("auto") => Ok(WindowGl::Auto),
            Some("on") => Ok(WindowGl::On),
            Some("off") => Ok(WindowGl::Off),
            Some(other) => Err(format!(
                "LEDGERLINK_WINDOW_GL is '{other}': write auto (the default), on or off"
            )),
        }
    }

    /// Whether the window's process should stay off GL, given the machine's `/dev/dri` and
    /// whether GTK will draw on Wayland.
    pub(crate) fn keeps_window_off_gl(self, dri: &Path, wayland: bool) -> bool {
        match self {
            WindowGl::On => false,
            WindowGl::Off => true,
            WindowGl::Auto => !wayland && !has_render_node(dri),
        }
    }
}

/// A GPU the kernel offers for rendering shows up as `/dev/dri/renderD128` and up (a `cardN` node
/// alone is only a display).
fn has_render_node(dri: &Path) -> bool {
    std::fs::read_dir(dri).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
    })
}

/// GTK draws on Wayland when a compositor is there and `GDK_BACKEND` does not ask for X11.
fn gtk_on_wayland() -> bool {
    std::env::var_os("WAYLAND_DISPLAY").is_some_and(|d| !d.is_empty())
        && !std::env::var("GDK_BACKEND").is_ok_and(|b| b.trim_start().starts_with("x11"))
}

/// Applies the settings above (on Linux, where WebKitGTK and glibc read them; elsewhere nothing).
/// It changes the environment, so it must run while the process has one thread: the first line
/// of `run`, which is why it is not public.
pub(crate) fn prepare() -> Result<Prepared, String> {
    let mut window_gl_off = false;
    #[cfg(target_os = "linux")]
    {
        let window_gl = WindowGl::parse(std::env::var("LEDGERLINK_WINDOW_GL").ok().as_deref())?;
        if window_gl.keeps_window_off_gl(Path::new("/dev/dri"), gtk_on_wayland())
            && egl_without_vendors()
        {
            change("GDK_GL", "disable");
            window_gl_off = true;
        }
        if std::env::var_os("JSC_useJIT").is_none() {
            change("JSC_useJIT", "false");
        }
        for (name, value) in MALLOC {
            if std::env::var_os(name).is_none() {
                change(name, value);
            }
        }
        #[cfg(target_env = "gnu")]
        tune_own_malloc();
    }
    Ok(Prepared { window_gl_off })
}

fn change(name: &'static str, value: &str) {
    let before = std::env::var_os(name);
    std::env::set_var(name, value);
    CHANGED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((name, before));
}

/// Opens `link` in the system browser, whose environment is the app's as it was before
/// [`prepare`]. Through `xdg-open` on Linux; where that is missing (and elsewhere) through the
/// `webbrowser` crate. Answers whether a browser took the link: `xdg-open` exits non-zero when
/// none is set up; one still running after 3 s is taken as started (it is reaped later).
pub(crate) fn open_browser(link: &str) -> bool {
    if cfg!(target_os = "linux") {
        match browser_command(link).spawn() {
            Ok(mut child) => {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
                while std::time::Instant::now() < deadline {
                    match child.try_wait() {
                        Ok(Some(status)) => return status.success(),
                        Ok(None) => std::thread::sleep(std::time::Duration::from_millis(50)),
                        Err(_) => return false,
                    }
                }
                std::thread::spawn(move || child.wait());
                return true;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return false,
        }
    }
    webbrowser::open(link).is_ok()
}

fn browser_command(link: &str) -> Command {
    let mut cmd = Command::new("xdg-open");
    cmd.arg(link)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (name, before) in CHANGED.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        match before {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
    cmd
}

/// Makes glvnd settle this process's EGL vendors as none (see the module's comment); answers
/// whether it could (the system's `libEGL` is glvnd's).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn egl_without_vendors() -> bool {
    use std::ffi::{c_char, c_int, c_void};
    const VENDORS: &str = "__EGL_VENDOR_LIBRARY_FILENAMES";
    const EGL_EXTENSIONS: c_int = 0x3055;
    type QueryString = unsafe extern "C" fn(*mut c_void, c_int) -> *const c_char;

    // SAFETY: dlopen and dlsym get NUL-terminated names. The libEGL handle is kept for the
    // process's life (WebKit uses the same library later and must find the vendor list settled);
    // the RTLD_NOLOAD look only asks whether glvnd's dispatch library came with it. The symbol is
    // EGL's `const char *eglQueryString(EGLDisplay, EGLint)`, called with EGL_NO_DISPLAY (null)
    // and EGL_EXTENSIONS: it reads no memory of ours, and its answer is not kept.
    unsafe {
        let lib = libc::dlopen(c"libEGL.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL);
        if lib.is_null() {
            return false;
        }
        let glvnd = libc::dlopen(
            c"libGLdispatch.so.0".as_ptr(),
            libc::RTLD_NOW | libc::RTLD_NOLOAD,
        );
        let sym = libc::dlsym(lib, c"eglQueryString".as_ptr());
        if glvnd.is_null() || sym.is_null() {
            return false;
        }
        let query = std::mem::transmute::<*mut c_void, QueryString>(sym);
        let before = std::env::var_os(VENDORS);
        // A list that names no vendor: the file exists and holds nothing.
        std::env::set_var(VENDORS, "/dev/null");
        query(std::ptr::null_mut(), EGL_EXTENSIONS);
        match before {
            Some(v) => std::env::set_var(VENDORS, v),
            None => std::env::remove_var(VENDORS),
        }
    }
    true
}

/// glibc's malloc settings and the values the app gives them (see the module's comment).
const MALLOC: [(&str, &str); 3] = [
    ("MALLOC_ARENA_MAX", "2"),
    ("MALLOC_TRIM_THRESHOLD_", "131072"),
    ("MALLOC_MMAP_THRESHOLD_", "131072"),
];

/// The malloc settings in the environment (ours by default), for this process's allocator.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_own_malloc() {
    for (name, param) in [
        ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX),
        ("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD),
        ("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD),
    ] {
        let Some(value) = std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse::<libc::c_int>().ok())
            .filter(|n| *n > 0)
        else {
            continue;
        };
        // SAFETY: mallopt takes two integers and only changes glibc's own tuning.
        unsafe {
            libc::mallopt(param, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_gl_setting_reads_auto_on_off_and_refuses_anything_else() {
        assert_eq!(WindowGl::parse(None), Ok(WindowGl::Auto));
        assert_eq!(WindowGl::parse(Some("")), Ok(WindowGl::Auto));
        assert_eq!(WindowGl::parse(Some(" on ")), Ok(WindowGl::On));
        assert_eq!(WindowGl::parse(Some("off")), Ok(WindowGl::Off));
        let e = WindowGl::parse(Some("yes")).unwrap_err();
        assert!(
            e.contains("'yes'") && e.contains("auto") && e.contains("off"),
            "{e}"
        );
    }

    #[test]
    fn the_browser_gets_the_environment_from_before_the_set_up() {
        // What `prepare` does to an environment with JSC_useJIT unset and GDK_GL set by the user.
        CHANGED
            .lock()
            .unwrap()
            .extend([("JSC_useJIT", None), ("GDK_GL", Some("gles".into()))]);
        let cmd = browser_command("http://127.0.0.1:7400/pair?code=ABCD-EFGH");
        let envs: Vec<_> = cmd.get_envs().collect();
        assert!(envs.contains(&(std::ffi::OsStr::new("JSC_useJIT"), None)));
        assert!(envs.contains(&(
            std::ffi::OsStr::new("GDK_GL"),
            Some(std::ffi::OsStr::new("gles"))
        )));
        assert_eq!(cmd.get_program(), "xdg-open");
        assert_eq!(
            cmd.get_args().collect::<Vec<_>>(),
            ["http://127.0.0.1:7400/pair?code=ABCD-EFGH"]
        );
    }

    #[test]
    fn auto_keeps_gl_only_where_there_is_a_render_node() {
        let dir = std::env::temp_dir().join(format!("ll-dri-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("card0"), "").unwrap();
        assert!(
            WindowGl::Auto.keeps_window_off_gl(&dir, false),
            "a display alone"
        );
        assert!(WindowGl::Auto.keeps_window_off_gl(&dir.join("missing"), false));
        assert!(
            !WindowGl::Auto.keeps_window_off_gl(&dir, true),
            "Wayland keeps WebKit's defaults"
        );
        std::fs::write(dir.join("renderD128"), "").unwrap();
        assert!(!WindowGl::Auto.keeps_window_off_gl(&dir, false));
        assert!(WindowGl::Off.keeps_window_off_gl(&dir, true));
        assert!(!WindowGl::On.keeps_window_off_gl(&dir.join("missing"), false));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
