package main

import "testing"

func TestResolveOwner(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	tests := []struct {
		owner  string
		euid   int
		getenv func(string) string
		want   *fileOwner
		bad    bool
	}{
		{"", 0, env(), nil, false},
		{"", 0, env("SUDO_UID", "1000", "SUDO_GID", "1001"), &fileOwner{1000, 1001}, false},
		{"", 1000, env("SUDO_UID", "1000", "SUDO_GID", "1001"), nil, false}, // not root: nothing to give
		{"", 0, env("SUDO_UID", "x", "SUDO_GID", "1"), nil, true},
		{"", 0, env("SUDO_UID", "1", "SUDO_GID", "-1"), nil, true},
		{"", 0, env("SUDO_UID", "1"), nil, true},
		{"", 0, env("SUDO_UID", "4294967295", "SUDO_GID", "1"), nil, true},
		// -Z wins over sudo; a UID nobody has is still an owner, its gid the same number.
		{"12345", 0, env("SUDO_UID", "1000", "SUDO_GID", "1000"), &fileOwner{12345, 12345}, false},
		{"0", 0, env("SUDO_UID", "1000", "SUDO_GID", "1000"), &fileOwner{0, 0}, false},
		{"no-such-user-nsntrace", 0, env(), nil, true},
	}
	for _, tc := range tests {
		got, err := resolveOwner(&options{owner: tc.owner}, tc.euid, tc.getenv)
		if (err != nil) != tc.bad {
			t.Errorf("owner %q euid %d: error %v, want error %v", tc.owner, tc.euid, err, tc.bad)
			continue
		}
		if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
			t.Errorf("owner %q euid %d: %+v, want %+v", tc.owner, tc.euid, got, tc.want)
		}
	}
}
