package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
)

// The NFS tests export /srv/nfs/homes from the VM's own kernel NFS server with root_squash, as a
// lab's NAS would, and mount homes from it on localhost.
const (
	nfsExport       = "/srv/nfs/homes"
	nfsMountTimeout = 20 * time.Second
	nfsGrace        = 15 * time.Second // nfs.unmount_after
	nfsPoll         = 15 * time.Second // how often a home still in use after its grace is looked at again
)

// startNFSServer exports /srv/nfs/homes (root_squash) with alice's home (hers, 0700) in it and
// starts nfs-server; the cleanup stops everything the NFS tests may leave, so the other tests
// find the VM's local homes again.
func startNFSServer(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("exportfs"); err != nil {
		t.Skip("no NFS server here (exportfs is missing)")
	}
	if out, err := exec.Command("modprobe", "nfsd").CombinedOutput(); err != nil {
		t.Skipf("no kernel NFS server here (nspawn has none; run in the VM): %v %s", err, out)
	}
	run(t, "mkdir", "-p", nfsExport+"/alice")
	run(t, "chmod", "0755", "/srv/nfs", nfsExport)
	run(t, "chown", "alice:alice", nfsExport+"/alice")
	run(t, "chmod", "0700", nfsExport+"/alice")
	exports, _ := os.ReadFile("/etc/exports")
	conf, _ := os.ReadFile("/etc/nfs.conf")
	// A freshly started nfsd refuses to open files for its grace period (90 s by default): keep it
	// short, or the first notebook waits for it.
	write(t, "/etc/nfs.conf", string(conf)+"\n[nfsd]\ngrace-time=10\nlease-time=10\n")
	write(t, "/etc/exports", nfsExport+" 127.0.0.1(rw,sync,no_subtree_check,root_squash)\n")
	t.Cleanup(func() {
		for _, c := range [][]string{
			{"systemctl", "stop", "jhgo-nfs-alice.service", "jhgo-nfs-bob.service", "jhgo-nfst-bob.service", "nfs-e2e-second-user.service"},
			{"systemctl", "stop", "home-alice.mount", "home-bob.mount"},
			{"systemctl", "reset-failed"},
			{"systemctl", "stop", "nfs-server"},
		} {
			exec.Command(c[0], c[1:]...).Run()
		}
		os.WriteFile("/etc/exports", exports, 0o644)
		os.WriteFile("/etc/nfs.conf", conf, 0o644)
	})
	if out, err := exec.Command("systemctl", "restart", "nfs-server").CombinedOutput(); err != nil {
		t.Skipf("nfs-server does not start here: %v %s", err, out)
	}
	run(t, "exportfs", "-ra")
}

func run(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// mountOn returns the id and source of what is mounted on path, from this process's mount table
// (the test runs in the VM's root namespace, as systemd does).
func mountOn(t *testing.T, path string) (id int, source string, ok bool) {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if len(fields) < 5 || sep < 0 || len(fields) < sep+3 || fields[4] != path {
			continue
		}
		id, _ = strconv.Atoi(fields[0])
		source, ok = fields[sep+2], true // the last one on path is what is seen there
	}
	return id, source, ok
}

// unitLoadState is "not-found" for a unit systemd has let go of (collected, or never made).
func unitLoadState(t *testing.T, name string) (load, active string) {
	t.Helper()
	props := unitInfo(t, name)
	load, _ = props["LoadState"].(string)
	active, _ = props["ActiveState"].(string)
	return load, active
}

func unitInfo(t *testing.T, name string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := sd.NewSystemConnectionContext(context.WithoutCancel(ctx))
	if err != nil {
		t.Fatalf("connect to systemd: %v", err)
	}
	defer conn.Close()
	props, err := conn.GetUnitPropertiesContext(ctx, name)
	if err != nil {
		t.Fatalf("properties of %s: %v", name, err)
	}
	return props
}

// nothingLeftBehind checks a failed spawn of user's left no server unit, no check unit, no mount
// unit and no mount.
func nothingLeftBehind(t *testing.T, prefix, user string) {
	t.Helper()
	for _, u := range []string{prefix + "-" + user + ".service", "home-" + user + ".mount", "jupyterhub-go-nfs-check-" + user + ".service"} {
		if load, active := unitLoadState(t, u); load != "not-found" {
			t.Errorf("%s left behind: LoadState=%s ActiveState=%s", u, load, active)
		}
	}
	if _, src, ok := mountOn(t, "/home/"+user); ok {
		t.Errorf("/home/%s is still mounted (%s)", user, src)
	}
}

// spawnFails starts user's server through the spawn page and returns its failed event's
// message and how long the spawn took.
func spawnFails(t *testing.T, b *browser, user string) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	defer logJournal(t, "home-"+user+".mount", start)
	defer logJournal(t, "jupyterhub-go-nfs-check-"+user+".service", start)
	events := b.spawn(t, user, 180*time.Second)
	took := time.Since(start)
	last := events[len(events)-1]
	if !last.Failed {
		t.Fatalf("the spawn did not fail: %v", events)
	}
	return last.Message, took
}

// waitStopped stops user's server through the API and waits until the API shows it stopped.
// logJournal shows what systemd and mount.nfs4 wrote about a unit since a moment (the lines the
// nfs package's failure messages are made from; its testdata/journal holds such lines).
func logJournal(t *testing.T, unit string, since time.Time) {
	t.Helper()
	out, _ := exec.Command("journalctl", "-u", unit, "-o", "cat", "--no-pager", "-q", "--since", "@"+strconv.FormatInt(since.Unix(), 10)).CombinedOutput()
	t.Logf("journal of %s:\n%s", unit, strings.TrimRight(string(out), "\n"))
}

func waitStopped(t *testing.T, base, user, admin string) {
	t.Helper()
	apiDoAt(t, base, "DELETE", "/hub/api/users/"+user+"/server", admin)
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", base+"/hub/api/users/"+user, nil)
		req.Header.Set("Authorization", "token "+admin)
		var u struct{ Server, Pending *string }
		if resp, err := http.DefaultClient.Do(req); err == nil {
			err = json.NewDecoder(resp.Body).Decode(&u)
			resp.Body.Close()
			if err == nil && u.Server == nil && u.Pending == nil {
				return
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s's server did not stop", user)
}

func adminToken(t *testing.T, h *hub) string {
	t.Helper()
	out, err := exec.Command(h.cmd.Path, "--config", h.cfgPath, "token", "create", "--user", "hubadmin", "--create", "--admin").Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestNFSHomes spawns into homes on a root-squashed NFS export: the three ways a spawn fails
// (server down, export missing, a home the user may not enter) each with its own message and
// nothing left behind; then alice's server with her home mounted, a file written by her kernel
// owned by her on the server, the mount shared across a restart of her server and across hub
// SIGKILLs, kept while a unit still needs it and unmounted only after the grace.
func TestNFSHomes(t *testing.T) {
	startNFSServer(t)
	const addr, prefix = "127.0.0.1:8003", "jhgo-nfs"
	base := "http://" + addr
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
[hub]
listen = %q
data_dir = %q
proxy_socket = "" # hubs of several tests may run at once; the package test covers the socket
log_level = "debug"

[spawner]
unit_prefix = %q
start_timeout = "240s"

[nfs]
enabled = true
# The hub's environment has JUPYTER_NFS_IP=127.0.0.1: without the override every mount would
# fail to resolve this name.
server = "nfs-server.invalid"
export = %q
mount_timeout = "%s"
unmount_after = "%s"
`, addr, dir+"/data", prefix, nfsExport, nfsMountTimeout, nfsGrace))
	h := startHub(t, cfg, addr, "JUPYTER_NFS_IP=127.0.0.1")
	admin := adminToken(t, h)
	step := func(name string, fn func(t *testing.T)) {
		if !t.Run(name, fn) {
			t.FailNow()
		}
	}

	bob := newBrowser(t, base)
	if resp, _ := bob.login("bob", "bob-pw"); resp.StatusCode != 200 {
		t.Fatalf("bob cannot log in: %d", resp.StatusCode)
	}
	failure := func(t *testing.T, kind string, says ...string) {
		t.Helper()
		msg, took := spawnFails(t, bob, "bob")
		t.Logf("failed after %s: %s", took.Round(100*time.Millisecond), msg)
		if !strings.HasPrefix(msg, "Spawn failed: "+kind+":") {
			t.Errorf("message does not start with %q: %s", kind, msg)
		}
		for _, s := range says {
			if !strings.Contains(msg, s) {
				t.Errorf("message does not say %q: %s", s, msg)
			}
		}
		if took > nfsMountTimeout {
			t.Errorf("the spawn took %s to fail, more than nfs.mount_timeout %s", took, nfsMountTimeout)
		}
		if _, page := bob.get("/hub/home"); !strings.Contains(page, kind+":") || !strings.Contains(page, "Start my server") {
			t.Errorf("home page does not show %q:\n%s", kind, page)
		}
		nothingLeftBehind(t, prefix, "bob")
	}

	step("NFS server stopped: unreachable", func(t *testing.T) {
		run(t, "systemctl", "stop", "nfs-server")
		failure(t, "NFS server unreachable", "127.0.0.1:2049", "connection refused")
		run(t, "systemctl", "start", "nfs-server")
		run(t, "exportfs", "-ra")
	})
	step("no directory for bob in the export: export missing", func(t *testing.T) {
		failure(t, "NFS export missing", nfsExport+"/bob", "No such file or directory")
	})
	step("bob's home belongs to another uid, mode 0700: permission denied", func(t *testing.T) {
		run(t, "mkdir", "-p", nfsExport+"/bob")
		run(t, "chown", "1003:1003", nfsExport+"/bob")
		run(t, "chmod", "0700", nfsExport+"/bob")
		failure(t, "permission denied", "bob (uid 1002)", "uid 1003, mode 0700", "root_squash")
	})

	alice := newBrowser(t, base)
	if resp, _ := alice.login("alice", "alice-pw"); resp.StatusCode != 200 {
		t.Fatalf("alice cannot log in: %d", resp.StatusCode)
	}
	spawnAlice := func(t *testing.T) []string {
		t.Helper()
		msgs := alice.spawnReady(t, "alice", 240*time.Second)
		if resp, _ := alice.get(ui("alice")); resp.StatusCode != 200 || resp.Request.URL.Path != ui("alice") {
			t.Fatalf("%s ended at %s with %d", ui("alice"), resp.Request.URL, resp.StatusCode)
		}
		return msgs
	}
	var mountID int
	step("alice's server starts with her NFS home mounted", func(t *testing.T) {
		msgs := spawnAlice(t)
		if !slices.ContainsFunc(msgs, func(m string) bool {
			return strings.Contains(m, "Mounting 127.0.0.1:"+nfsExport+"/alice on /home/alice")
		}) {
			t.Errorf("no progress event says the home is mounted: %q", msgs)
		}
		id, src, ok := mountOn(t, "/home/alice")
		if !ok || src != "127.0.0.1:"+nfsExport+"/alice" {
			t.Fatalf("/home/alice: mounted %v from %q", ok, src)
		}
		mountID = id
		m := unitInfo(t, "home-alice.mount")
		t.Logf("home-alice.mount: Transient=%v RequiredBy=%v Before=%v", m["Transient"], m["RequiredBy"], m["Before"])
		if m["Transient"] != true || m["Description"] != "jupyterhub-go: NFS home of alice" {
			t.Errorf("home-alice.mount: Transient=%v Description=%v", m["Transient"], m["Description"])
		}
		if by, _ := m["RequiredBy"].([]string); !slices.Contains(by, prefix+"-alice.service") {
			t.Errorf("systemd does not know the server requires the mount: RequiredBy=%v", by)
		}
		p := unitProps(t, prefix+"-alice.service")
		t.Logf("%s-alice.service: RequiresMountsFor=%v Requires=%v WorkingDirectory=%v", prefix, p["RequiresMountsFor"], p["Requires"], p["WorkingDirectory"])
		if rm, _ := p["RequiresMountsFor"].([]string); !slices.Contains(rm, "/home/alice") {
			t.Errorf("the server unit has no RequiresMountsFor=/home/alice: %v", p["RequiresMountsFor"])
		}
	})

	step("her kernel writes a file in her home; on the server it is hers", func(t *testing.T) {
		got := runInKernel(t, alice, "alice", "import os\np = os.path.expanduser('~/from-kernel.txt')\nopen(p, 'w').write('written through NFS')\n(os.getcwd(), os.getuid())")
		// The server's working directory is her 0700 home on a root-squashed export: systemd
		// entered it after switching to alice (root may not).
		if got != "('/home/alice', 1001)" {
			t.Errorf("kernel cwd and uid = %s, want ('/home/alice', 1001)", got)
		}
		fi, err := os.Stat(nfsExport + "/alice/from-kernel.txt")
		if err != nil {
			t.Fatalf("the file is not on the server side: %v", err)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != 1001 {
			t.Errorf("on the server the file belongs to uid %d, want alice's 1001", uid)
		}
		t.Logf("%s/alice/from-kernel.txt: uid %d, mode %v", nfsExport, fi.Sys().(*syscall.Stat_t).Uid, fi.Mode())
		// root_squash is real: root on this host is nobody to the server.
		if _, err := os.ReadFile("/home/alice/from-kernel.txt"); !errors.Is(err, fs.ErrPermission) {
			t.Errorf("root read alice's file through NFS (%v): the export does not squash root", err)
		}
	})

	step("a restart of her server keeps and shares the one mount", func(t *testing.T) {
		waitStopped(t, base, "alice", admin)
		if id, _, ok := mountOn(t, "/home/alice"); !ok || id != mountID {
			t.Fatalf("after her server stopped, within nfs.unmount_after: mounted %v, id %d (was %d)", ok, id, mountID)
		}
		msgs := spawnAlice(t)
		if !slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(m, "is mounted already") }) {
			t.Errorf("the second server did not reuse the mount: %q", msgs)
		}
		if id, _, _ := mountOn(t, "/home/alice"); id != mountID {
			t.Errorf("mount id %d, want the first server's %d", id, mountID)
		}
	})

	step("a unit outside the hub needs her home too", func(t *testing.T) {
		run(t, "systemd-run", "--unit=nfs-e2e-second-user", "--uid=alice", "-p", "RequiresMountsFor=/home/alice",
			"-p", "WorkingDirectory=/home/alice", "/bin/sleep", "900")
	})

	step("after a hub SIGKILL and restart nothing changes", func(t *testing.T) {
		pid := unitProps(t, prefix+"-alice.service")["MainPID"]
		h.signal(syscall.SIGKILL)
		h.start()
		if resp, _ := alice.get(ui("alice")); resp.StatusCode != 200 || resp.Request.URL.Path != ui("alice") {
			t.Errorf("after the restart %s ended at %s with %d", ui("alice"), resp.Request.URL, resp.StatusCode)
		}
		if p := unitProps(t, prefix+"-alice.service"); p["MainPID"] != pid {
			t.Errorf("server respawned (MainPID %v, was %v)", p["MainPID"], pid)
		}
		if id, _, _ := mountOn(t, "/home/alice"); id != mountID {
			t.Errorf("mount id %d, want %d", id, mountID)
		}
	})

	step("her last server stops; the home stays past the grace while a unit needs it", func(t *testing.T) {
		waitStopped(t, base, "alice", admin)
		time.Sleep(nfsGrace + 5*time.Second)
		if id, _, ok := mountOn(t, "/home/alice"); !ok || id != mountID {
			t.Fatalf("unmounted under nfs-e2e-second-user.service (mounted %v, id %d)", ok, id)
		}
	})

	step("after another hub SIGKILL, the home goes once the last unit is gone", func(t *testing.T) {
		h.signal(syscall.SIGKILL)
		h.start() // nothing of alice's in this hub's memory: only systemd knows the mount
		run(t, "systemctl", "stop", "nfs-e2e-second-user.service")
		stopped := time.Now()
		deadline := stopped.Add(nfsGrace + nfsPoll + 20*time.Second)
		for {
			if _, _, ok := mountOn(t, "/home/alice"); !ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("/home/alice still mounted %s after its last user stopped", time.Since(stopped).Round(time.Second))
			}
			time.Sleep(time.Second)
		}
		t.Logf("unmounted %s after the last unit that needed it stopped", time.Since(stopped).Round(time.Second))
		nothingLeftBehind(t, prefix, "alice")
	})
}

// TestNFSMountTimeout points the hub at a "server" that accepts connections and never answers:
// the spawn fails with "NFS mount timeout" once nfs.mount_timeout has passed, and says that the
// server answers connections but not NFS. JUPYTER_NFS_PATH overrides nfs.export here.
func TestNFSMountTimeout(t *testing.T) {
	if _, err := os.Stat("/sbin/mount.nfs4"); err != nil {
		t.Skip("no NFS client here")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:20490")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // hold every connection open, say nothing
		var held []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		exec.Command("systemctl", "stop", "home-bob.mount").Run()
		exec.Command("systemctl", "reset-failed").Run()
	})
	const addr, prefix = "127.0.0.1:8004", "jhgo-nfst"
	const timeout = 10 * time.Second
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
[hub]
listen = %q
data_dir = %q
proxy_socket = "" # hubs of several tests may run at once; the package test covers the socket
[spawner]
unit_prefix = %q
start_timeout = "120s"
[nfs]
enabled = true
server = "127.0.0.1"
export = "/not/this/one"
options = "rw,hard,timeo=600,port=20490"
mount_timeout = "%s"
`, addr, dir+"/data", prefix, timeout))
	startHub(t, cfg, addr, "JUPYTER_NFS_PATH="+nfsExport)
	bob := newBrowser(t, "http://"+addr)
	if resp, _ := bob.login("bob", "bob-pw"); resp.StatusCode != 200 {
		t.Fatalf("bob cannot log in: %d", resp.StatusCode)
	}
	msg, took := spawnFails(t, bob, "bob")
	t.Logf("failed after %s: %s", took.Round(100*time.Millisecond), msg)
	for _, s := range []string{"Spawn failed: NFS mount timeout:", "127.0.0.1:" + nfsExport + "/bob", "within 10s", "accepts connections on 127.0.0.1:20490"} {
		if !strings.Contains(msg, s) {
			t.Errorf("message does not say %q: %s", s, msg)
		}
	}
	if took < timeout || took > 2*timeout+10*time.Second {
		t.Errorf("failed after %s; nfs.mount_timeout is %s", took, timeout)
	}
	nothingLeftBehind(t, prefix, "bob")
}
