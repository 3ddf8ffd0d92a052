# Set-up shared by the h200_s3_*.sh device scripts; sourced (`. docs/benchmarks/scripts/device_setup.sh`) from the
# repository root after the script has set R (scratch folder) and OUT (what comes back). Installs the carried
# wheels of .whl/ (../../../shared/device/README.md) into /tmp/site, puts them and this checkout on PYTHONPATH,
# and ends the calling script (exit 1) if they do not install (log in $R/install.log); the device image's
# transformers package is uninstalled first.
export PYTHONUNBUFFERED=1
mkdir -p "$R" "$OUT"
python3 -m pip uninstall -q -y transformers > /dev/null 2>&1
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl > "$R/install.log" 2>&1 || exit 1
export PYTHONPATH=/tmp/site:$PWD
