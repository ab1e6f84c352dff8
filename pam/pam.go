// Package pam logs users in through the host's PAM stack and looks up their
// Unix groups. It is the default authenticator of jupyterhub-go.
package pam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	gopam "github.com/msteinert/pam/v2"
)

const (
	defaultService = "jupyterhub-go"
	defaultConfDir = "/etc/pam.d"

	// maxInFlight bounds the PAM transactions one Authenticator runs at once.
	// A PAM call cannot be interrupted, so a login abandoned by its caller keeps
	// its thread until PAM returns; with a hung backend (LDAP, sssd) or a flood
	// of wrong passwords each costing pam_unix's failure delay, unbounded
	// logins would pile up OS threads until the runtime dies.
	maxInFlight = 64
)

// ErrAuthFailed is returned for any failed login, the same for unknown users
// and bad passwords.
var ErrAuthFailed = errors.New("invalid username or password")

// Options configure an Authenticator.
type Options struct {
	Service string // PAM service name, default "jupyterhub-go"
	ConfDir string // where service files live, default "/etc/pam.d" (tests point it at a pam_wrapper dir)
	Logger  *slog.Logger
}

// Authenticator checks passwords against one PAM service. It is safe for
// concurrent use.
type Authenticator struct {
	service string
	confDir string
	// plainStart selects pam_start over pam_start_confdir. For the default
	// directory it keeps the distribution's own lookup rules (vendor dirs,
	// includes), and pam_wrapper only intercepts pam_start.
	plainStart bool
	log        *slog.Logger
	slots      chan struct{}
}

// New refuses a service whose file <ConfDir>/<Service> does not exist: PAM would otherwise
// silently fall back to /etc/pam.d/other, which may let anyone in (or no one).
func New(opts Options) (*Authenticator, error) {
	service := opts.Service
	if service == "" {
		service = defaultService
	}
	if err := checkServiceName(service); err != nil {
		return nil, err
	}
	// libpam lower-cases the service name before it opens the file, so the
	// file checked here must be the lower-case one too.
	service = asciiLower(service)

	confDir := opts.ConfDir
	if confDir == "" {
		confDir = defaultConfDir
	}
	confDir = filepath.Clean(confDir)

	path := filepath.Join(confDir, service)
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("pam: service file %s does not exist (PAM would silently use the %q service instead): %w",
				path, "other", err)
		}
		return nil, fmt.Errorf("pam: checking service file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("pam: service file %s is not a regular file", path)
	}

	plainStart := confDir == defaultConfDir
	if !plainStart && !gopam.CheckPamHasStartConfdir() {
		return nil, fmt.Errorf("pam: service directory %s needs pam_start_confdir (libpam >= 1.4), which this libpam lacks; use %s",
			confDir, defaultConfDir)
	}

	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "pam", "service", service)
	if os.Geteuid() != 0 {
		// The most common "PAM says wrong password" report: pam_unix run by a
		// non-root process can only verify that process's own user.
		log.Warn("not running as root: pam_unix can then only check the hub user's own password; other stacks (sssd, LDAP) may still work")
	}

	return &Authenticator{
		service:    service,
		confDir:    confDir,
		plainStart: plainStart,
		log:        log,
		slots:      make(chan struct{}, maxInFlight),
	}, nil
}

// Authenticate runs the auth stack (pam_authenticate) and then the account stack (pam_acct_mgmt).
// It returns ErrAuthFailed (possibly wrapped, errors.Is works) for credential/account failures, and
// another wrapped error for system problems (PAM service broken, etc.). ctx: the PAM call cannot be
// interrupted, so it runs in a goroutine and ctx.Err() is returned if ctx ends first.
func (a *Authenticator) Authenticate(ctx context.Context, username, password string) error {
	if reason := badCredentials(username, password); reason != "" {
		a.log.Info("pam login refused before PAM", "user", username, "reason", reason)
		return ErrAuthFailed
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	select {
	case a.slots <- struct{}{}:
	case <-ctx.Done():
		a.log.Info("pam login abandoned while waiting for a free PAM slot", "user", username, "err", ctx.Err())
		return ctx.Err()
	}

	// Buffered so the goroutine can always deliver and exit, even when
	// nobody is left to receive.
	done := make(chan error, 1)
	abandoned := make(chan struct{})
	go func() {
		defer func() { <-a.slots }()
		err := a.transact(username, password)
		select {
		case <-abandoned:
			a.log.Info("pam login finished after its caller gave up", "user", username, "err", err)
		default:
		}
		done <- err
	}()

	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// A result that raced with the deadline is still the truth.
		select {
		case err := <-done:
			return err
		default:
		}
		close(abandoned)
		a.log.Info("pam login abandoned while PAM was still running", "user", username, "err", ctx.Err())
		return ctx.Err()
	}
}

// transact runs one complete PAM transaction and classifies its outcome.
func (a *Authenticator) transact(username, password string) error {
	// Some PAM modules keep per-thread state or change thread credentials, and
	// libpam expects one handle to stay on one thread. Never unlocking makes
	// the runtime retire this thread when the goroutine ends, so whatever a
	// module left behind cannot leak into unrelated goroutines.
	runtime.LockOSThread()

	conv := gopam.ConversationFunc(func(style gopam.Style, msg string) (string, error) {
		switch style {
		case gopam.PromptEchoOff:
			return password, nil
		case gopam.PromptEchoOn:
			return username, nil
		case gopam.ErrorMsg:
			a.log.Debug("pam error message", "user", username, "msg", msg)
			return "", nil
		case gopam.TextInfo:
			a.log.Debug("pam info message", "user", username, "msg", msg)
			return "", nil
		default:
			// Binary prompts and unknown styles have no meaningful answer
			// from a web login.
			return "", fmt.Errorf("unsupported PAM conversation style %d", style)
		}
	})

	var (
		tx  *gopam.Transaction
		err error
	)
	if a.plainStart {
		tx, err = gopam.Start(a.service, username, conv)
	} else {
		tx, err = gopam.StartConfDir(a.service, username, conv, a.confDir)
	}
	if err != nil {
		a.log.Error("pam start failed", "user", username, "confdir", a.confDir, "err", err)
		return fmt.Errorf("pam: starting service %q from %s for user %q: %w", a.service, a.confDir, username, err)
	}
	defer func() {
		if err := tx.End(); err != nil {
			a.log.Debug("pam end reported an error", "user", username, "err", err)
		}
	}()

	// Without DisallowNullAuthtok, pam_unix's common "nullok" lets an account
	// with an empty password hash in without checking the password at all.
	if err := tx.Authenticate(gopam.DisallowNullAuthtok); err != nil {
		return a.classify("authenticate", username, err)
	}
	if err := tx.AcctMgmt(gopam.DisallowNullAuthtok); err != nil {
		return a.classify("account", username, err)
	}
	a.log.Info("pam login succeeded", "user", username)
	return nil
}

// classify turns a PAM error into ErrAuthFailed when it is about the user's
// credentials or account, and into a wrapped system error otherwise. Every
// credential failure yields the same bare ErrAuthFailed so callers cannot
// tell unknown users from wrong passwords; the detail goes to the log only.
func (a *Authenticator) classify(stage, username string, err error) error {
	var code gopam.Error
	if errors.As(err, &code) && isCredentialFailure(code) {
		a.log.Info("pam login failed", "user", username, "stage", stage, "err", err)
		return ErrAuthFailed
	}
	a.log.Error("pam login hit a system error", "user", username, "stage", stage, "err", err)
	return fmt.Errorf("pam: %s stage of service %q for user %q: %w", stage, a.service, username, err)
}

// isCredentialFailure reports whether a PAM result means "this user may not
// log in" rather than "the PAM stack is broken or unreachable".
// PAM_AUTHINFO_UNAVAIL is deliberately absent: it is what a stack returns when
// its backend (sssd, LDAP, a password file) cannot be reached, and reporting
// that as a wrong password would hide an outage from operators.
func isCredentialFailure(code gopam.Error) bool {
	switch code {
	case gopam.ErrAuth,
		gopam.ErrUserUnknown,
		gopam.ErrCredInsufficient,
		gopam.ErrMaxtries,
		gopam.ErrPermDenied,
		gopam.ErrAcctExpired,
		gopam.ErrNewAuthtokReqd,
		gopam.ErrAuthtokExpired,
		gopam.ErrCredExpired:
		return true
	}
	return false
}

// badCredentials returns why a username/password pair is refused before PAM
// sees it, or "" when it may go to PAM. NUL would silently truncate the C
// string PAM receives, and '/' in a name is a path-traversal hazard for any
// module that builds file names from it.
func badCredentials(username, password string) string {
	switch {
	case username == "":
		return "empty username"
	case strings.ContainsAny(username, "\x00/"):
		return "username contains NUL or '/'"
	case password == "":
		return "empty password"
	case strings.ContainsRune(password, 0):
		return "password contains NUL"
	}
	return ""
}

// checkServiceName refuses names that could step outside the service
// directory or that libpam would mangle.
func checkServiceName(service string) error {
	if service == "." || service == ".." {
		return fmt.Errorf("pam: invalid service name %q", service)
	}
	for _, r := range service {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return fmt.Errorf("pam: invalid service name %q: only ASCII letters, digits, '.', '_' and '-' are allowed", service)
		}
	}
	return nil
}

// asciiLower mirrors libpam's tolower() in the C locale.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}
