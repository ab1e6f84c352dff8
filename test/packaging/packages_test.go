// Package packaging tests the packages `make deb` and `make arch` build.
//
// On the build host (`make package-test`, which builds both and passes them in JHGO_DEB and
// JHGO_ARCH_PKG): lintian finds no errors in the .deb, and the .deb and the Arch package ship the
// same files, made from the files in this repository. In the test VM (`make integration`): the
// .deb installs, runs behind Debian's nginx, survives restarts and goes away cleanly
// (install_test.go). Anywhere else the tests skip.
package packaging

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
)

// file is one regular file or symlink in a package.
type file struct {
	mode   os.FileMode
	link   string
	sha256 string
	data   []byte // kept for small files and the binary
}

// pkgFiles maps a path without leading slash ("usr/bin/jupyterhub-go") to its file.
type pkgFiles map[string]file

func readTar(t *testing.T, r io.Reader, skip func(name string) bool) pkgFiles {
	t.Helper()
	files := pkgFiles{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("read package: %v", err)
		}
		name := strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/")
		if skip(name) || h.Typeflag == tar.TypeDir {
			continue
		}
		f := file{mode: h.FileInfo().Mode(), link: h.Linkname}
		if h.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("read %s: %v", name, err)
			}
			f.sha256 = fmt.Sprintf("%x", sha256.Sum256(data))
			if len(data) < 1<<20 || name == "usr/bin/jupyterhub-go" {
				f.data = data
			}
		}
		files[name] = f
	}
}

// debFiles lists the .deb's data archive. /lib is where bookworm still keeps systemd units; on
// every merged-/usr system (bookworm included) it is /usr/lib, so it is compared as that.
func debFiles(t *testing.T, deb string) pkgFiles {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "--fsys-tarfile", deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb --fsys-tarfile %s: %v", deb, err)
	}
	raw := readTar(t, bytes.NewReader(out), func(string) bool { return false })
	files := pkgFiles{}
	for name, f := range raw {
		if strings.HasPrefix(name, "lib/") {
			name = "usr/" + name
		}
		files[name] = f
	}
	return files
}

// archFiles lists an Arch package, without makepkg's metadata (.PKGINFO, .BUILDINFO, .MTREE).
func archFiles(t *testing.T, pkg string) (pkgFiles, []byte) {
	t.Helper()
	f, err := os.Open(pkg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v (make arch writes .pkg.tar.gz)", pkg, err)
	}
	all := readTar(t, zr, func(string) bool { return false })
	files := pkgFiles{}
	for name, f := range all {
		if !strings.HasPrefix(name, ".") {
			files[name] = f
		}
	}
	return files, all[".PKGINFO"].data
}

// Files only one package format has, by its own conventions.
var debOnly = map[string]bool{
	"usr/share/doc/jupyterhub-go/copyright":     true, // Debian policy 12.5; Arch has no equivalent yet (no license chosen)
	"usr/share/doc/jupyterhub-go/changelog.gz":  true, // Debian policy 12.7; pacman keeps no changelog file
	"usr/share/lintian/overrides/jupyterhub-go": true,
}

func packages(t *testing.T) (deb, arch string) {
	deb, arch = os.Getenv("JHGO_DEB"), os.Getenv("JHGO_ARCH_PKG")
	if deb == "" || arch == "" {
		t.Skip("needs JHGO_DEB and JHGO_ARCH_PKG: make package-test")
	}
	if !filepath.IsAbs(deb) || !filepath.IsAbs(arch) {
		t.Fatalf("JHGO_DEB and JHGO_ARCH_PKG must be absolute paths (go test runs in the package directory)")
	}
	return deb, arch
}

func TestPackagesShipTheSameFiles(t *testing.T) {
	debPath, archPath := packages(t)
	deb := debFiles(t, debPath)
	arch, _ := archFiles(t, archPath)

	var onlyDeb, onlyArch []string
	for name := range deb {
		if _, ok := arch[name]; !ok && !debOnly[name] {
			onlyDeb = append(onlyDeb, name)
		}
	}
	for name := range arch {
		if _, ok := deb[name]; !ok {
			onlyArch = append(onlyArch, name)
		}
	}
	sort.Strings(onlyDeb)
	sort.Strings(onlyArch)
	if len(onlyDeb) > 0 || len(onlyArch) > 0 {
		t.Errorf("the packages ship different files:\n only in the .deb: %v\n only in the Arch package: %v", onlyDeb, onlyArch)
	}
	for name, d := range deb {
		a, ok := arch[name]
		if !ok {
			continue
		}
		if d.mode != a.mode || d.link != a.link {
			t.Errorf("%s: .deb has %v %q, Arch package %v %q", name, d.mode, d.link, a.mode, a.link)
		}
		// The binary is built twice, with each distribution's compiler flags; everything else
		// must be byte for byte the same.
		if name != "usr/bin/jupyterhub-go" && d.sha256 != a.sha256 {
			t.Errorf("%s differs between the .deb and the Arch package", name)
		}
	}
	t.Logf("%d files in both packages", len(arch))
}

// `sudo make install` (the from-source route, PREFIX=/usr/local) installs what the packages ship,
// under /usr/local, with the unit pointing at /usr/local/bin.
func TestPackagesMatchMakeInstall(t *testing.T) {
	_, archPath := packages(t)
	root := os.Getenv("JHGO_INSTALL_ROOT")
	if root == "" {
		t.Skip("needs JHGO_INSTALL_ROOT: make package-test")
	}
	arch, _ := archFiles(t, archPath)
	installed := pkgFiles{}
	err := filepath.Walk(root, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		installed[rel] = file{mode: fi.Mode(), sha256: fmt.Sprintf("%x", sha256.Sum256(data)), data: data}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range arch {
		local := strings.Replace(name, "usr/", "usr/local/", 1)
		if strings.HasPrefix(name, "etc/") {
			local = name
		}
		f, ok := installed[local]
		switch {
		case !ok:
			t.Errorf("make install has no /%s (the packages' /%s)", local, name)
		case f.mode != a.mode:
			t.Errorf("/%s: mode %v, the packages' %v", local, f.mode, a.mode)
		case name == "usr/lib/systemd/system/jupyterhub-go.service":
			want := strings.ReplaceAll(string(a.data), "/usr/bin/jupyterhub-go", "/usr/local/bin/jupyterhub-go")
			if string(f.data) != want || !strings.Contains(want, "\nExecStart=/usr/local/bin/jupyterhub-go ") {
				t.Errorf("/%s is not the packages' unit with /usr/local/bin:\n%s", local, f.data)
			}
		case name != "usr/bin/jupyterhub-go" && f.sha256 != a.sha256:
			t.Errorf("/%s differs from the packages' /%s", local, name)
		}
		delete(installed, local)
	}
	for name := range installed {
		t.Errorf("make install also installs /%s, which the packages do not ship", name)
	}
}

// The packages carry the repository's files: unit, PAM service, nginx site, and the example
// configuration with every key commented out.
func TestPackagesShipTheRepositoryFiles(t *testing.T) {
	debPath, _ := packages(t)
	deb := debFiles(t, debPath)
	want := map[string]struct {
		repoFile string
		mode     os.FileMode
	}{
		"usr/lib/systemd/system/jupyterhub-go.service": {"packaging/jupyterhub-go.service", 0o644},
		"etc/pam.d/jupyterhub-go":                      {"packaging/pam.d/jupyterhub-go", 0o644},
		"etc/nginx/sites-available/jupyterhub-go.conf": {"contrib/nginx/jupyterhub-go.conf", 0o644},
	}
	for name, w := range want {
		repo, err := os.ReadFile(filepath.Join("../..", w.repoFile))
		if err != nil {
			t.Fatal(err)
		}
		f, ok := deb[name]
		if !ok {
			t.Errorf("the .deb has no %s", name)
			continue
		}
		if !bytes.Equal(f.data, repo) || f.mode != w.mode {
			t.Errorf("%s (%v) is not %s (%v)", name, f.mode, w.repoFile, w.mode)
		}
	}
	if f := deb["usr/bin/jupyterhub-go"]; f.mode != 0o755 {
		t.Errorf("usr/bin/jupyterhub-go has mode %v", f.mode)
	}

	cfg, ok := deb["etc/jupyterhub-go/config.toml"]
	if !ok {
		t.Fatal("the .deb has no etc/jupyterhub-go/config.toml")
	}
	if cfg.mode != 0o640 {
		t.Errorf("config.toml has mode %v, want 0640 (it may come to hold secrets)", cfg.mode)
	}
	// Parsed, the shipped file is exactly the defaults: nothing is pinned by installing it.
	got := config.Config{}
	if err := config.Parse(cfg.data, &got); err != nil {
		t.Fatalf("shipped config.toml does not parse: %v", err)
	}
	if !reflect.DeepEqual(got, config.Config{}) {
		t.Errorf("shipped config.toml sets keys (every key should be commented out): %+v", got)
	}
	// Uncommenting every "#key =" line gives back the documented example, so every key is there
	// with its default and its explanation.
	uncommented := regexp.MustCompile(`(?m)^#([a-z_]+ *=)`).ReplaceAll(cfg.data, []byte("$1"))
	example, err := os.ReadFile("../../contrib/config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(uncommented, example) {
		t.Errorf("shipped config.toml, uncommented, is not contrib/config.example.toml:\n%s", cfg.data)
	}
}

func TestPackagesAgreeOnTheVersion(t *testing.T) {
	debPath, archPath := packages(t)
	out, err := exec.Command("dpkg-deb", "--field", debPath, "Version").Output()
	if err != nil {
		t.Fatal(err)
	}
	debVersion := strings.TrimSpace(string(out))
	_, pkginfo := archFiles(t, archPath)
	m := regexp.MustCompile(`(?m)^pkgver = (\S+)-\d+$`).FindSubmatch(pkginfo)
	if m == nil {
		t.Fatalf("no pkgver in .PKGINFO:\n%s", pkginfo)
	}
	if string(m[1]) != debVersion {
		t.Errorf(".deb version %s, Arch pkgver %s: keep packaging/debian/changelog and packaging/arch/PKGBUILD in step", debVersion, m[1])
	}

	// Each package's binary says the version it was packaged as.
	deb := debFiles(t, debPath)
	arch, _ := archFiles(t, archPath)
	for what, files := range map[string]pkgFiles{".deb": deb, "Arch package": arch} {
		bin := filepath.Join(t.TempDir(), "jupyterhub-go")
		if err := os.WriteFile(bin, files["usr/bin/jupyterhub-go"].data, 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "version").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "jupyterhub-go "+debVersion+" ") {
			t.Errorf("%s: `jupyterhub-go version` = %q (%v), want version %s", what, out, err, debVersion)
		}
	}
}

// lintian's errors are release-critical for Debian; its warnings are reported, not failed on.
func TestPackagesDebHasNoLintianErrors(t *testing.T) {
	debPath, _ := packages(t)
	if _, err := exec.LookPath("lintian"); err != nil {
		t.Fatal("lintian is not installed (make package-test installs it)")
	}
	out, err := exec.Command("lintian", "--fail-on", "error", "--info", debPath).CombinedOutput()
	var errs, other []string
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "E: "):
			errs = append(errs, line)
		case strings.HasPrefix(line, "W: "), strings.HasPrefix(line, "I: "):
			other = append(other, line)
		}
	}
	t.Logf("lintian: %d errors, %d warnings and notes:\n%s", len(errs), len(other), strings.Join(other, "\n"))
	if len(errs) > 0 || err != nil {
		t.Errorf("lintian failed (%v):\n%s", err, strings.Join(errs, "\n"))
	}
}
