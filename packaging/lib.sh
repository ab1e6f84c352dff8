# lib.sh - helpers shared by make-deb.sh and make-arch.sh (sourced, not run).

# need CMD-or-PATH:PKG... - install the Debian packages whose command (or file) is missing; as
# another user than root, or without apt-get, say what is missing instead.
need() {
  local missing=() c
  for c in "$@"; do
    if [[ ${c%%:*} = /* ]]; then [[ -e ${c%%:*} ]] || missing+=("${c#*:}")
    else command -v "${c%%:*}" >/dev/null || missing+=("${c#*:}"); fi
  done
  ((${#missing[@]})) || return 0
  if ((EUID != 0)) || ! command -v apt-get >/dev/null; then
    echo "$(basename "$0"): please install: ${missing[*]}" >&2; exit 1
  fi
  say "installing host packages: ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
    --no-install-recommends "${missing[@]}" >/dev/null
}

# copy_tree DIR - copy the source tree (the current directory) to DIR: the files git tracks plus
# untracked, not ignored ones (a fresh clone with your edits); without git (an unpacked tarball),
# everything but build outputs.
copy_tree() {
  local dest=$1 f
  mkdir -p "$dest"
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # git ls-files -c also names files deleted in the work tree: copy only what exists.
    while IFS= read -r -d '' f; do
      [[ -e $f || -L $f ]] && printf '%s\0' "$f"
    done < <(git ls-files -z -co --exclude-standard) | tar --null -T - -cf - | tar -xf - -C "$dest"
  else
    tar --exclude=./bin --exclude=./dist --exclude=./.git -cf - . | tar -xf - -C "$dest"
  fi
}
