package child

import (
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Status
		want int
	}{
		{"zero", Status{}, 0},
		{"code", Status{Code: 3}, 3},
		{"code255", Status{Code: 255}, 255},
		{"sigkill", Status{Signal: syscall.SIGKILL}, 137},
		{"sigterm", Status{Signal: syscall.SIGTERM}, 143},
		{"notfound", Status{ExecError: &os.PathError{Op: "exec", Path: "/x", Err: syscall.ENOENT}}, 127},
		{"notdir", Status{ExecError: &os.PathError{Op: "exec", Path: "/x", Err: syscall.ENOTDIR}}, 126},
		{"perm", Status{ExecError: &os.PathError{Op: "exec", Path: "/x", Err: syscall.EACCES}}, 126},
		{"noexec", Status{ExecError: &os.PathError{Op: "exec", Path: "/x", Err: syscall.ENOEXEC}}, 126},
	} {
		if got := tc.s.ExitCode(); got != tc.want {
			t.Errorf("%s: ExitCode() = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestStatusString(t *testing.T) {
	for _, tc := range []struct {
		s    Status
		want string
	}{
		{Status{Code: 3}, "exit status 3"},
		{Status{Signal: syscall.SIGKILL}, "killed by signal 9 (killed)"},
		{Status{ExecError: &os.PathError{Op: "exec", Path: "/x", Err: syscall.ENOENT}}, "exec /x: no such file or directory"},
	} {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.s, got, tc.want)
		}
	}
}

func TestProgramEnv(t *testing.T) {
	env := []string{"PATH=/bin", "HOME=/root", envChild + "=1", "USER=root", "LOGNAME=root", "X=a=b"}
	if got, want := programEnv(env, nil), []string{"PATH=/bin", "HOME=/root", "USER=root", "LOGNAME=root", "X=a=b"}; !slices.Equal(got, want) {
		t.Errorf("programEnv(nil user) = %q, want %q", got, want)
	}
	u := &User{Uid: 65534, Gid: 65534, Name: "nobody", Home: "/nonexistent"}
	want := []string{"PATH=/bin", "X=a=b", "HOME=/nonexistent", "USER=nobody", "LOGNAME=nobody"}
	if got := programEnv(env, u); !slices.Equal(got, want) {
		t.Errorf("programEnv(nobody) = %q, want %q", got, want)
	}
}

func TestRemoteError(t *testing.T) {
	m := errorMessage(msgError, "mount /proc", os.NewSyscallError("mount", syscall.EPERM))
	err := m.err()
	if !errors.Is(err, os.ErrPermission) {
		t.Errorf("errors.Is(%v, os.ErrPermission) = false", err)
	}
	if got, want := err.Error(), "mount /proc: operation not permitted"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	m = errorMessage(msgError, "read config", errors.New("bad json"))
	if got, want := m.err().Error(), "read config: bad json"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if errors.Unwrap(m.err()) != nil {
		t.Errorf("error without errno unwraps to %v", errors.Unwrap(m.err()))
	}
}

func TestLookupUserUnknown(t *testing.T) {
	for name, want := range map[string]string{
		"no-such-user-nsntrace": `unknown user "no-such-user-nsntrace"`,
		"4294967295":            `unknown user "4294967295": 4294967295 is not a valid UID`,
	} {
		_, err := LookupUser(name)
		if !errors.Is(err, ErrUnknownUser) {
			t.Fatalf("LookupUser(%q) = %v, want ErrUnknownUser", name, err)
		}
		if err.Error() != want {
			t.Errorf("LookupUser(%q) error %q, want %q", name, err, want)
		}
	}
	if _, err := LookupUser(""); err == nil || err.Error() != "empty user name" {
		t.Errorf(`LookupUser("") = %v, want "empty user name"`, err)
	}
}

// TestLookupUserNumeric checks that a UID without a passwd entry is a user
// of its own: gid the same number, no groups, home /.
func TestLookupUserNumeric(t *testing.T) {
	u, err := LookupUser("4000000000")
	if err != nil {
		t.Fatal(err)
	}
	want := &User{Uid: 4000000000, Gid: 4000000000, Groups: []uint32{}, Name: "4000000000", Home: "/"}
	if !reflect.DeepEqual(u, want) {
		t.Errorf("LookupUser(4000000000) = %+v, want %+v", u, want)
	}
}

func TestLookupUserRoot(t *testing.T) {
	for _, name := range []string{"root", "0"} {
		u, err := LookupUser(name)
		if err != nil {
			t.Fatalf("LookupUser(%q): %v", name, err)
		}
		if u.Uid != 0 || u.Gid != 0 || u.Name != "root" || !strings.HasPrefix(u.Home, "/") || !slices.Contains(u.Groups, 0) {
			t.Errorf("LookupUser(%q) = %+v", name, u)
		}
	}
}
