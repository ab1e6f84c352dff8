package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The LDAP test's directory: an OpenLDAP server on this host holding one account that exists
// nowhere else, reached through nslcd's NSS and PAM modules as README.md's "LDAP and Active
// Directory" section sets them up.
const (
	ldapSuffix  = "dc=example,dc=test"
	ldapAdminDN = "cn=admin," + ldapSuffix
	ldapAdminPW = "ldap-admin-pw"
	ldapURI     = "ldap://127.0.0.1/"
	laraPW      = "lara-ldap-pw"
	laraUID     = 5001
)

// TestLDAPUserLogsInAndSpawns: lara is only in slapd. Once nslcd, nsswitch.conf and the PAM
// stacks are set up the way the README tells an admin to, with no hub setting about LDAP, she
// logs in through the login form with her LDAP password, her server starts as her LDAP uid and
// answers through the router; a wrong password is refused. Everything is undone afterwards, so
// the tests after this one see local accounts only.
func TestLDAPUserLogsInAndSpawns(t *testing.T) {
	onlyOn(t, "bookworm")
	for _, bin := range []string{"slapd", "slapadd", "ldapadd", "nslcd", "pam-auth-update"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("no %s here: the bookworm test image carries slapd, ldap-utils, nslcd, libnss-ldapd and libpam-ldapd", bin)
		}
	}
	t.Cleanup(func() {
		// Runs last: after the system changes below are undone, lara must be unknown again.
		if out, err := exec.Command("getent", "passwd", "lara").Output(); err == nil {
			t.Errorf("after the test lara is still an account here: %s", out)
		}
	})
	dir := t.TempDir()
	startSlapd(t, dir)
	useLDAPAccounts(t)

	step := func(name string, fn func(t *testing.T)) {
		if !t.Run(name, fn) {
			t.FailNow() // later steps build on this one
		}
	}
	step("lara is an account of this host from LDAP, not from /etc/passwd", func(t *testing.T) {
		var entry string
		waitFor(t, 20*time.Second, "nslcd answers for lara", func() bool {
			out, err := exec.Command("getent", "-s", "ldap", "passwd", "lara").Output()
			entry = strings.TrimSpace(string(out))
			return err == nil
		})
		if f := strings.Split(entry, ":"); len(f) != 7 || f[2] != fmt.Sprint(laraUID) || f[5] != "/home/lara" {
			t.Errorf("getent -s ldap passwd lara = %q", entry)
		}
		if out, err := exec.Command("getent", "-s", "files", "passwd", "lara").Output(); err == nil {
			t.Errorf("lara is in /etc/passwd: %s", out)
		}
		passwd, _ := os.ReadFile("/etc/passwd")
		if strings.Contains("\n"+string(passwd), "\nlara:") {
			t.Errorf("lara is in /etc/passwd")
		}
		if out, err := exec.Command("id", "-nG", "lara").Output(); err != nil || !slices.Contains(strings.Fields(string(out)), "ldap-users") {
			t.Errorf("id -nG lara = %q, %v; want her LDAP group ldap-users among them", out, err)
		}
	})

	dir = filepath.Join(dir, "hub")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	const addr = "127.0.0.1:8018"
	base := "http://" + addr
	// allowed_groups names the LDAP group: only its members get in, and only NSS knows them.
	cfg := writeConfig(t, dir, fmt.Sprintf(`
[hub]
listen = %q
data_dir = %q
proxy_socket = "" # hubs of several tests may run at once
[auth]
allowed_groups = ["ldap-users"]
[spawner]
unit_prefix = "jhgo-ldap"
start_timeout = "240s"
`, addr, dir+"/data"))
	h := startHub(t, cfg, addr)
	admin := adminToken(t, h)
	t.Cleanup(func() { exec.Command("systemctl", "stop", "jhgo-ldap-lara.service").Run() })

	step("a wrong password is refused", func(t *testing.T) {
		resp, body := newBrowser(t, base).login("lara", "not-her-password")
		if resp.StatusCode != 403 || !strings.Contains(body, "invalid username or password") {
			t.Errorf("got %d:\n%.1000s", resp.StatusCode, body)
		}
	})

	step("a local account with no password stays out although common-auth says nullok", func(t *testing.T) {
		run(t, "useradd", "-u", "5002", "-M", "-d", "/nonexistent", "nopw")
		t.Cleanup(func() { exec.Command("userdel", "nopw").Run() })
		run(t, "passwd", "-d", "nopw")
		if resp, _ := newBrowser(t, base).login("nopw", "anything"); resp.StatusCode != 403 {
			t.Errorf("nopw (empty password hash) logged in with any password: %d", resp.StatusCode)
		}
		// allowed_groups alone would keep nopw out: PAM itself must have said no.
		var pamSaid []string
		for _, line := range strings.Split(hubLog(h), "\n") {
			if strings.Contains(line, "user=nopw") && strings.Contains(line, "pam login") {
				pamSaid = append(pamSaid, line)
			}
		}
		if len(pamSaid) == 0 || !strings.Contains(pamSaid[0], `msg="pam login failed"`) {
			t.Errorf("PAM did not refuse nopw; the hub logged: %q", pamSaid)
		}
	})

	lara := newBrowser(t, base)
	step("lara logs in with her LDAP password", func(t *testing.T) {
		resp, body := lara.login("lara", laraPW)
		if resp.StatusCode != 200 || resp.Request.URL.Path != "/hub/home" || !strings.Contains(body, "Start my server") {
			t.Fatalf("login landed on %s (%d):\n%.2000s", resp.Request.URL, resp.StatusCode, body)
		}
		var u struct{ Groups []string }
		if err := json.Unmarshal(apiGet(t, base, "/hub/api/users/lara", admin), &u); err != nil || !slices.Contains(u.Groups, "ldap-users") {
			t.Errorf("lara's groups in the hub = %v (%v), want ldap-users among them", u.Groups, err)
		}
	})

	step("her server starts as her LDAP uid and answers through the router", func(t *testing.T) {
		start := time.Now()
		events := lara.spawn(t, "lara", 240*time.Second)
		if last := events[len(events)-1]; !last.Ready {
			logJournal(t, "jhgo-ldap-lara.service", start)
			t.Fatalf("spawn did not become ready: %v", events)
		}
		t.Logf("lara's server was ready after %s", time.Since(start).Round(time.Second))
		p := unitProps(t, "jhgo-ldap-lara.service")
		if p["User"] != "lara" {
			t.Errorf("unit User=%v, want lara", p["User"])
		}
		pid, _ := p["MainPID"].(uint32)
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); pid == 0 || err != nil || !strings.Contains(string(st), fmt.Sprintf("\nUid:\t%d\t", laraUID)) {
			t.Errorf("the server's process (MainPID %v) does not run as uid %d (%v)", p["MainPID"], laraUID, err)
		}
		resp, body := lara.get(ui("lara"))
		if resp.StatusCode != 200 || resp.Request.URL.Path != ui("lara") {
			t.Fatalf("%s ended at %s with %d:\n%.2000s", ui("lara"), resp.Request.URL, resp.StatusCode, body)
		}
	})

	step("her server stops", func(t *testing.T) {
		waitStopped(t, base, "lara", admin)
		if load, active := unitLoadState(t, "jhgo-ldap-lara.service"); load != "not-found" && active != "inactive" {
			t.Errorf("unit still there: LoadState=%s ActiveState=%s", load, active)
		}
	})
}

func apiGet(t *testing.T, base, path, token string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Authorization", "token "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s = %d %s", path, resp.StatusCode, body)
	}
	return body
}

// startSlapd runs an OpenLDAP server made from scratch in dir on 127.0.0.1:389: the suffix
// dc=example,dc=test with an admin, ou=people holding lara (posixAccount and shadowAccount, uid
// 5001, her password hashed) and ou=groups holding her own group and ldap-users. Anonymous
// clients (nslcd) read everything but passwords; a password serves only to bind as its entry.
func startSlapd(t *testing.T, dir string) {
	t.Helper()
	confDir, dbDir := filepath.Join(dir, "slapd.d"), filepath.Join(dir, "db")
	for _, d := range []string{confDir, dbDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	hash := func(pw string) string { return strings.TrimSpace(run(t, "slappasswd", "-h", "{SSHA}", "-s", pw)) }
	config := fmt.Sprintf(`dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: %[1]s/slapd.pid

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif
include: file:///etc/ldap/schema/cosine.ldif
include: file:///etc/ldap/schema/nis.ldif
include: file:///etc/ldap/schema/inetorgperson.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcDbDirectory: %[2]s
olcSuffix: %[3]s
olcRootDN: %[4]s
olcRootPW: %[5]s
olcDbIndex: objectClass eq
olcDbIndex: uid,uidNumber,gidNumber,memberUid eq
olcAccess: {0}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {1}to * by * read
`, dir, dbDir, ldapSuffix, ldapAdminDN, hash(ldapAdminPW))
	write(t, filepath.Join(dir, "config.ldif"), config)
	run(t, "slapadd", "-n", "0", "-F", confDir, "-l", filepath.Join(dir, "config.ldif"))

	logf, err := os.Create(filepath.Join(dir, "slapd.log"))
	if err != nil {
		t.Fatal(err)
	}
	// -d keeps slapd in the foreground, a child of the test, and logs each operation.
	slapd := exec.Command("slapd", "-F", confDir, "-h", ldapURI, "-d", "stats")
	slapd.Stdout, slapd.Stderr = logf, logf
	if err := slapd.Start(); err != nil {
		t.Fatalf("start slapd: %v", err)
	}
	t.Cleanup(func() {
		slapd.Process.Signal(os.Interrupt)
		slapd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			lines := strings.Split(string(b), "\n")
			t.Logf("slapd log (last 40 lines):\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	waitFor(t, 30*time.Second, "slapd answers", func() bool {
		return exec.Command("ldapsearch", "-x", "-H", ldapURI, "-b", "", "-s", "base").Run() == nil
	})

	data := fmt.Sprintf(`dn: %[1]s
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,%[1]s
objectClass: organizationalUnit
ou: people

dn: ou=groups,%[1]s
objectClass: organizationalUnit
ou: groups

dn: uid=lara,ou=people,%[1]s
objectClass: inetOrgPerson
objectClass: posixAccount
objectClass: shadowAccount
uid: lara
cn: Lara Ldap
sn: Ldap
uidNumber: %[2]d
gidNumber: %[2]d
homeDirectory: /home/lara
loginShell: /bin/bash
shadowLastChange: 19700
userPassword: %[3]s

dn: cn=lara,ou=groups,%[1]s
objectClass: posixGroup
cn: lara
gidNumber: %[2]d

dn: cn=ldap-users,ou=groups,%[1]s
objectClass: posixGroup
cn: ldap-users
gidNumber: 5100
memberUid: lara
`, ldapSuffix, laraUID, hash(laraPW))
	write(t, filepath.Join(dir, "data.ldif"), data)
	run(t, "ldapadd", "-x", "-H", ldapURI, "-D", ldapAdminDN, "-w", ldapAdminPW, "-f", filepath.Join(dir, "data.ldif"))
}

// useLDAPAccounts does what README.md's "LDAP and Active Directory" section tells an admin to
// do, in its order, and undoes it at the end: nslcd pointed at the directory, nsswitch.conf
// asking it after the local files, the PAM profile enabled, the hub's PAM service reading the
// system's stacks, nslcd restarted, and lara's home made, owned by her LDAP uid.
func useLDAPAccounts(t *testing.T) {
	t.Helper()
	files := []string{"/etc/nslcd.conf", "/etc/nsswitch.conf", "/etc/pam.d/jupyterhub-go"}
	saved := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		saved[f] = b
	}
	t.Cleanup(func() {
		for _, c := range [][]string{
			{"pam-auth-update", "--disable", "ldap"},
			{"systemctl", "stop", "nslcd"},
			{"rm", "-rf", "/home/lara"},
		} {
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				t.Errorf("undo: %s: %v %s", strings.Join(c, " "), err, out)
			}
		}
		for _, f := range files {
			if err := os.WriteFile(f, saved[f], 0o644); err != nil {
				t.Errorf("undo: restore %s: %v", f, err)
			}
		}
	})

	// 1. nslcd: where the directory is and where its entries start. The file keeps its mode
	// (0640, group nslcd: it may hold a bind password).
	if err := os.WriteFile("/etc/nslcd.conf", []byte(fmt.Sprintf("uid nslcd\ngid nslcd\nuri %s\nbase %s\n", ldapURI, ldapSuffix)), 0); err != nil {
		t.Fatal(err)
	}
	// 2. nsswitch.conf: accounts, groups and shadow entries from LDAP after the local files.
	var out []string
	for _, line := range strings.Split(string(saved["/etc/nsswitch.conf"]), "\n") {
		for _, db := range []string{"passwd:", "group:", "shadow:"} {
			if strings.HasPrefix(line, db) && !slices.Contains(strings.Fields(line), "ldap") {
				line += " ldap"
			}
		}
		out = append(out, line)
	}
	write(t, "/etc/nsswitch.conf", strings.Join(out, "\n"))
	// 3. The system's PAM stacks (common-auth, common-account) ask pam_ldap after pam_unix...
	run(t, "pam-auth-update", "--enable", "ldap")
	// 4. ...and the hub's PAM service uses them rather than pam_unix alone.
	write(t, "/etc/pam.d/jupyterhub-go", "# jupyterhub-go: the system's stacks (local accounts, then LDAP via pam-auth-update)\n@include common-auth\n@include common-account\n")
	// 5. nslcd with the new settings.
	run(t, "systemctl", "restart", "nslcd")
	// 6. Her home, owned by her LDAP uid and group: nothing creates it at a hub login.
	if err := os.Mkdir("/home/lara", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown("/home/lara", laraUID, laraUID); err != nil {
		t.Fatal(err)
	}
}
