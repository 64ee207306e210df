# Shared helpers for scripts/test and scripts/demo: install what is missing, say what is happening.

step() { printf '\n==> %s\n' "$*" >&2; }

# apt packages, installed only when missing (CI and fresh machines run as root; elsewhere via sudo).
ensure_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  step "installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
}

ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is missing: install Rust (https://rustup.rs) and run this again" >&2
    exit 1
  fi
  if command -v rustup >/dev/null 2>&1; then
    for component in rustfmt clippy; do
      rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
    done
  fi
  command -v cc >/dev/null 2>&1 || ensure_apt build-essential
  command -v pkg-config >/dev/null 2>&1 || ensure_apt pkg-config
}

# What building and running the Tauri desktop app needs on Debian 12 (see ../shared/reference/TAURI-HERE.md).
DESKTOP_PACKAGES=(libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev libsoup-3.0-dev libssl-dev)
# What the tests need besides: a virtual display, a D-Bus session, the WebKit WebDriver, a Secret
# Service (gnome-keyring) for the keychain test, and ImageMagick's `import` for the screenshots.
DESKTOP_TEST_PACKAGES=(xvfb xauth webkit2gtk-driver dbus dbus-x11 gnome-keyring imagemagick)

ensure_desktop() { ensure_apt "${DESKTOP_PACKAGES[@]}"; }

# The operators' console is signed in to from Debian's Chromium, driven through chromedriver.
ensure_browser_test() { ensure_apt chromium chromium-driver; }

ensure_desktop_test() {
  ensure_apt "${DESKTOP_PACKAGES[@]}" "${DESKTOP_TEST_PACKAGES[@]}"
  if ! command -v tauri-driver >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tauri-driver" ]; then
    step "installing tauri-driver"
    cargo install tauri-driver --locked
  fi
  command -v node >/dev/null 2>&1 || ensure_apt nodejs
  # The desktop test is a till in New Zealand: the web view writes its date and time fields as the
  # C library's locale says, so that locale must exist (Debian ships only C and POSIX built).
  if ! locale -a 2>/dev/null | grep -qi '^en_NZ\.utf-\?8$'; then
    ensure_apt locales
    step "generating the en_NZ.UTF-8 locale"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo localedef -i en_NZ -f UTF-8 en_NZ.UTF-8 \
      || echo "could not generate en_NZ.UTF-8: the web view's own date fields will be written the C locale's way" >&2
  fi
}

# schemathesis, for the API conformance test: one pinned 4.x release in a virtual environment under
# target/ (kept between runs), never in the system's Python. Exports LEDGERLINK_SCHEMATHESIS.
SCHEMATHESIS_VERSION=4.32.5
ensure_schemathesis() {
  local venv="$PWD/target/schemathesis-venv"
  if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    step "installing schemathesis $SCHEMATHESIS_VERSION (in $venv)"
    command -v python3 >/dev/null 2>&1 || ensure_apt python3
    rm -rf "$venv"
    python3 -m venv "$venv" 2>/dev/null || { ensure_apt python3-venv; python3 -m venv "$venv"; }
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
  fi
  export LEDGERLINK_SCHEMATHESIS="$venv/bin/st"
}

# PostgreSQL from Debian's packages, for the tests' throwaway clusters: installed without creating
# or starting the package's own cluster.
ensure_postgres() {
  # openssl makes the certificates of the TLS test's cluster.
  command -v openssl >/dev/null 2>&1 || ensure_apt openssl
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    $sudo mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
  fi
  ensure_apt postgresql
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "PostgreSQL did not install: the storage tests need it (apt-get install postgresql)" >&2
    exit 1
  fi
}

# One throwaway PostgreSQL cluster for the whole test run: a temporary directory, a free port on
# loopback, fsync off, run as the postgres user when this runs as root (initdb and postgres refuse
# root). Exports LEDGERLINK_TEST_PG_URL (a superuser's URL); each test makes its own database in it.
# stop_test_postgres stops it and removes its files.
start_test_postgres() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  PG_TEST_DIR=$(mktemp -d /tmp/ll-pg-test-XXXXXX)
  PG_TEST_AS=()
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres:postgres "$PG_TEST_DIR"
    PG_TEST_AS=(runuser -u postgres --)
  fi
  "${PG_TEST_AS[@]}" "$bin/initdb" -D "$PG_TEST_DIR/data" -U postgres -A trust --no-sync -E UTF8 --locale=C >/dev/null
  local port=$((20000 + RANDOM % 20000))
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  "${PG_TEST_AS[@]}" "$bin/pg_ctl" -D "$PG_TEST_DIR/data" -l "$PG_TEST_DIR/log" -w -s \
    -o "-p $port -k $PG_TEST_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
    start
  PG_TEST_BIN=$bin
  export LEDGERLINK_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

stop_test_postgres() {
  [ -n "${PG_TEST_DIR:-}" ] || return 0
  "${PG_TEST_AS[@]}" "$PG_TEST_BIN/pg_ctl" -D "$PG_TEST_DIR/data" -m immediate -s stop >/dev/null 2>&1 || true
  rm -rf "$PG_TEST_DIR"
}
