package deploy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Options steer Deploy and Rollback.
type Options struct {
	Layout        Layout
	Keep          int           // complete releases kept on the board, current included; 0 means 3
	DryRun        bool          // print the plan, change nothing
	AllowArch     []string      // board architectures accepted; nil means armv7l only
	HealthTimeout time.Duration // how long the new release has to answer /healthz; 0 means 60 s
	LockWait      time.Duration // how long the board's switch waits for another deploy's lock; 0 means 60 s
	// Progress receives upload progress (a bar on a terminal); nil is quiet.
	Progress func(done, total int64)
	Out      io.Writer        // plan and step lines for the user; nil discards
	Log      *slog.Logger     // nil discards
	Now      func() time.Time // release timestamps; nil means time.Now
	// SudoPassword is asked when the login user is not root and sudo wants a password
	// (the PYNQ image's xilinx user); nil refuses such boards.
	SudoPassword func() (string, error)

	testHook func(step string) // tests cut the connection at named steps
}

func (o Options) withDefaults() Options {
	o.Layout = o.Layout.withDefaults()
	if o.Keep <= 0 {
		o.Keep = 3
	}
	if o.HealthTimeout <= 0 {
		o.HealthTimeout = 60 * time.Second
	}
	if o.LockWait <= 0 {
		o.LockWait = 60 * time.Second
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// PlannedFile is one file of a release and how it gets to the board.
type PlannedFile struct {
	File
	LinkFrom string // board path of an identical file from an earlier release; "" uploads
}

// Result says what Deploy or Rollback did.
type Result struct {
	Version       string // the release now current (or planned, in a dry run)
	Previous      string // the release that was current before
	Facts         Facts
	Plan          []PlannedFile
	Uploaded      int   // files sent over SFTP
	Linked        int   // files reused from earlier releases on the board
	BytesUploaded int64 // bytes sent over SFTP
	Removed       []string
	Health        string // the /healthz answer of the new release
	DryRun        bool
}

// HealthError is a release that did not come up; the board runs Previous again.
type HealthError struct {
	Version      string
	RolledBackTo string // "" when there was nothing to go back to (the service is stopped)
	Logs         string // the failed release's last journal lines
	Err          error
	RollbackErr  error // the old release did not come back either
}

func (e *HealthError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "release %s failed its health check: %v", e.Version, e.Err)
	switch {
	case e.RollbackErr != nil:
		fmt.Fprintf(&b, "; rolling back to %s failed too: %v", e.RolledBackTo, e.RollbackErr)
	case e.RolledBackTo != "":
		fmt.Fprintf(&b, "; rolled back to %s, which is serving", e.RolledBackTo)
	default:
		b.WriteString("; there was no earlier release, the service is stopped")
	}
	if e.Logs != "" {
		fmt.Fprintf(&b, "\nlast log lines of %s:\n%s", e.Version, strings.TrimRight(e.Logs, "\n"))
	}
	return b.String()
}

func (e *HealthError) Unwrap() error { return e.Err }

// board bundles a connection with the layout and what is known about the board.
type board struct {
	c        *Conn
	l        Layout
	facts    Facts
	opts     Options
	sudoPass string // sudo's password when it needs one
}

// root wraps cmd so that it runs as root.
func (b *board) root(cmd string) string {
	switch {
	case b.facts.UID == 0:
		return cmd
	case b.sudoPass != "":
		return b.l.Sudo + " -S -p '' sh -c " + shq(cmd)
	}
	return b.l.Sudo + " -n sh -c " + shq(cmd)
}

// rootStdin puts sudo's password in front of a root command's input: sudo -S reads one
// line and leaves the rest to the command.
func (b *board) rootStdin(stdin io.Reader) io.Reader {
	if b.facts.UID == 0 || b.sudoPass == "" {
		return stdin
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	return io.MultiReader(strings.NewReader(b.sudoPass+"\n"), stdin)
}

func (b *board) runRoot(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	return b.c.Run(ctx, b.root(cmd), b.rootStdin(stdin))
}

// trySudoPassword checks whether sudo takes the password Options.SudoPassword gives.
func (b *board) trySudoPassword(ctx context.Context) error {
	if b.facts.UID == 0 || b.facts.Sudo || b.opts.SudoPassword == nil {
		return nil
	}
	pw, err := b.opts.SudoPassword()
	if err != nil {
		return fmt.Errorf("sudo password: %w", err)
	}
	if strings.ContainsAny(pw, "\n") {
		return fmt.Errorf("sudo password: contains a newline")
	}
	_, err = b.c.Run(ctx, b.l.Sudo+" -S -p '' true", strings.NewReader(pw+"\n"))
	if err != nil {
		b.opts.Log.Warn("sudo refused the password", "err", err)
		return nil // CheckFacts reports that the user cannot become root
	}
	b.sudoPass = pw
	b.facts.Sudo, b.facts.SudoPassword = true, true
	return nil
}

func (b *board) step(format string, args ...any) {
	fmt.Fprintf(b.opts.Out, format+"\n", args...)
}

// PlanOffline prints, without a board, the plan of a deploy to a board that has no
// releases yet: every file uploaded. pynqctl deploy --dry-run falls back to it when the
// board cannot be reached.
func PlanOffline(bundle *Bundle, opts Options) (*Result, error) {
	opts = opts.withDefaults()
	bundle, cleanup, err := withUnit(bundle, opts.Layout)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	res := &Result{DryRun: true, Version: releaseVersion(opts.Now(), bundle.Content)}
	res.Plan = plan(bundle, &State{}, opts.Layout)
	printPlan(opts.Out, res, nil)
	return res, nil
}

// Deploy makes bundle the board's current release: upload what the board lacks, verify,
// install the unit, switch, restart and wait for /healthz; a release that does not come
// up is switched back. c must be a fresh connection; Deploy does not close it.
func Deploy(ctx context.Context, c *Conn, bundle *Bundle, opts Options) (*Result, error) {
	opts = opts.withDefaults()
	if strings.ContainsAny(opts.Layout.BaseDir, " \t\n'\"\\") || !path.IsAbs(opts.Layout.BaseDir) {
		return nil, fmt.Errorf("base dir %q: want an absolute path without spaces or quotes", opts.Layout.BaseDir)
	}
	bundle, cleanup, err := withUnit(bundle, opts.Layout)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	b, state, err := openBoard(ctx, c, opts)
	if err != nil {
		return nil, err
	}
	res := &Result{Facts: b.facts, Previous: state.Current, DryRun: opts.DryRun}
	res.Version = releaseVersion(opts.Now(), bundle.Content)
	if state.Release(res.Version) != nil {
		return nil, fmt.Errorf("release %s already exists on the board (deploys less than a millisecond apart?)", res.Version)
	}
	res.Plan = plan(bundle, state, b.l)
	var upload int64
	for _, p := range res.Plan {
		if p.LinkFrom == "" {
			upload += p.Size
		}
	}
	if err := CheckFacts(b.facts, opts.AllowArch, bundle.BinArch, upload); err != nil {
		return nil, err
	}
	partial := partialReleases(state)
	if opts.DryRun {
		printPlan(opts.Out, res, partial)
		return res, nil
	}
	b.hook("lock")
	unlock, err := b.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	b.warnUnfinishedSwitch(ctx)
	// Another deploy may have finished between the first look and the lock.
	if state, err = c.ReadState(ctx, opts.Layout); err != nil {
		return nil, err
	}
	res.Previous, res.Plan, partial = state.Current, plan(bundle, state, b.l), partialReleases(state)
	if err := b.prepare(ctx, partial); err != nil {
		return nil, err
	}
	res.Removed = append(res.Removed, partial...)
	if err := b.stage(ctx, res); err != nil {
		return res, err
	}
	body, err := b.activate(ctx, res.Version, state.Current, unlock)
	if err != nil {
		return res, err
	}
	res.Health = body
	if unlock, err = b.lock(ctx); err != nil {
		opts.Log.Warn("old releases stay: the deploy lock is taken again", "err", err)
		return res, nil
	}
	defer unlock()
	if state, err = c.ReadState(ctx, opts.Layout); err != nil {
		opts.Log.Warn("old releases stay: listing them failed", "err", err)
		return res, nil
	}
	removed, err := b.prune(ctx, state, state.Current)
	res.Removed = append(res.Removed, removed...)
	if err != nil {
		opts.Log.Warn("removing old releases failed", "err", err)
	}
	return res, nil
}

// lock holds <base>/.deploy.lock (flock) in a session of its own until the returned
// function first runs; a dropped connection ends the session and so releases the lock.
func (b *board) lock(ctx context.Context) (func(), error) {
	lockFile := path.Join(b.l.BaseDir, ".deploy.lock")
	cmd := b.root(fmt.Sprintf("mkdir -p %s && exec flock -n %s sh -c 'echo locked; exec cat >/dev/null'",
		shq(b.l.BaseDir), shq(lockFile)))
	s, err := b.c.ssh.NewSession()
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", lockFile, err)
	}
	stdin, err := s.StdinPipe()
	if err != nil {
		s.Close()
		return nil, err
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		s.Close()
		return nil, err
	}
	var stderr bytes.Buffer
	s.Stderr = &stderr
	if err := s.Start(cmd); err != nil {
		s.Close()
		return nil, fmt.Errorf("lock %s: %w", lockFile, err)
	}
	if _, err := io.Copy(stdin, b.rootStdin(strings.NewReader(""))); err != nil {
		s.Close()
		return nil, err
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) == "locked" {
		return sync.OnceFunc(func() {
			stdin.Close()
			_ = s.Wait()
			s.Close()
		}), nil
	}
	stdin.Close()
	err = s.Wait()
	s.Close()
	var ee *ssh.ExitError
	if errors.As(err, &ee) && ee.ExitStatus() == 127 {
		b.opts.Log.Warn("flock is missing on the board; deploying without a lock", "stderr", strings.TrimSpace(stderr.String()))
		return func() {}, nil
	}
	if errors.As(err, &ee) && ee.ExitStatus() == 1 && stderr.Len() == 0 {
		return nil, fmt.Errorf("another deploy or rollback is running on the board (%s is locked): wait for it to finish", lockFile)
	}
	return nil, fmt.Errorf("lock %s: %v %s", lockFile, err, strings.TrimSpace(stderr.String()))
}

// openBoard detects the board's facts and reads its releases.
func openBoard(ctx context.Context, c *Conn, opts Options) (*board, *State, error) {
	facts, err := c.DetectFacts(ctx, opts.Layout)
	if err != nil {
		return nil, nil, err
	}
	b := &board{c: c, l: opts.Layout, facts: facts, opts: opts}
	if err := b.trySudoPassword(ctx); err != nil {
		return nil, nil, err
	}
	opts.Log.Debug("board", "facts", b.facts.String())
	b.step("board: %s", b.facts)
	state, err := c.ReadState(ctx, opts.Layout)
	if err != nil {
		return nil, nil, err
	}
	return b, state, nil
}

// plan decides, per file, whether the board already has an identical copy. Copies in the
// current release are preferred; any release whose files all verified will do.
func plan(bundle *Bundle, state *State, l Layout) []PlannedFile {
	have := map[string]string{} // digest -> board path
	addRelease := func(r *Release) {
		if r == nil || !r.Complete {
			return
		}
		for name, sum := range r.Files {
			if _, ok := have[sum]; !ok {
				have[sum] = path.Join(l.releaseDir(r.Name), name)
			}
		}
	}
	addRelease(state.Release(state.Current))
	for i := len(state.Releases) - 1; i >= 0; i-- {
		addRelease(&state.Releases[i])
	}
	out := make([]PlannedFile, len(bundle.Files))
	for i, f := range bundle.Files {
		out[i] = PlannedFile{File: f, LinkFrom: have[f.SHA256]}
	}
	return out
}

// partialReleases are releases an interrupted upload left behind.
func partialReleases(state *State) []string {
	var out []string
	for _, r := range state.Releases {
		if !r.Complete && r.Name != state.Current {
			out = append(out, r.Name)
		}
	}
	return out
}

func printPlan(w io.Writer, res *Result, partial []string) {
	fmt.Fprintf(w, "plan: release %s (current: %s)\n", res.Version, orNone(res.Previous))
	var up, reuse int64
	for _, p := range res.Plan {
		action := "upload"
		if p.LinkFrom != "" {
			action = "skip (on board: " + p.LinkFrom + ")"
			reuse += p.Size
		} else {
			up += p.Size
		}
		fmt.Fprintf(w, "  %-40s %10s  %s\n", p.Name, humanBytes(p.Size), action)
	}
	fmt.Fprintf(w, "upload %s, reuse %s\n", humanBytes(up), humanBytes(reuse))
	for _, r := range partial {
		fmt.Fprintf(w, "would remove partial release %s\n", r)
	}
	fmt.Fprintln(w, "dry run: nothing changed")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// prepare creates the release tree, owned by root because the unit runs its files as
// root, removes releases an interrupted upload left behind and, for a login user who is
// not root, makes that user's upload directory (the only place it can write).
func (b *board) prepare(ctx context.Context, partial []string) error {
	base, rels := shq(b.l.BaseDir), shq(b.l.releasesDir())
	// chown -R also takes back releases that older deploys left owned by the login user.
	cmd := "mkdir -p " + rels + " && chown 0:0 " + base + " && chmod 755 " + base + " " + rels + " && chown -R 0:0 " + rels +
		" && rm -rf " + rels + "/" + removingPrefix + "*"
	if b.facts.UID != 0 {
		up := shq(b.l.uploadDir())
		cmd += " && rm -rf " + up + " && mkdir -m 700 " + up + " && chown " + shq(b.c.User()) + " " + up
	}
	for _, r := range partial {
		b.step("removing partial release %s (an earlier upload was interrupted)", r)
		cmd += " && rm -rf " + shq(b.l.releaseDir(r))
	}
	if _, err := b.runRoot(ctx, cmd, nil); err != nil {
		return fmt.Errorf("prepare %s: %w", b.l.BaseDir, err)
	}
	return nil
}

// stage puts every file of the release into its directory on the board, verifies all
// digests there and only then marks the release complete: a release without the mark
// is a partial one, which the next deploy removes. A login user who is not root uploads
// into its own directory and root copies the files into the release: copies, not
// moves, because a file the user still holds open could be changed after the check.
// The board runs a handful of processes per step, not one per file: a model has
// hundreds of files, and a process costs milliseconds on the A9 (tens under emulation).
func (b *board) stage(ctx context.Context, res *Result) error {
	dir := b.l.releaseDir(res.Version)
	var files []File
	for _, p := range res.Plan {
		files = append(files, p.File)
	}
	if err := b.linkExisting(ctx, dir, res); err != nil {
		return err
	}
	b.hook("upload")
	into := dir
	if b.facts.UID != 0 {
		into = path.Join(b.l.uploadDir(), res.Version)
	}
	n, bytes, err := b.upload(ctx, into, res.Plan)
	res.Uploaded, res.BytesUploaded = n, bytes
	if err != nil {
		return fmt.Errorf("upload release %s: %w (the current release is untouched; the partial one is removed by the next deploy)", res.Version, err)
	}
	b.step("uploaded %d file(s) (%s), reused %d from earlier releases", res.Uploaded, humanBytes(bytes), res.Linked)
	if into != dir {
		if err := b.takeUploads(ctx, into, dir, res.Plan); err != nil {
			return err
		}
	}
	b.hook("verify")
	if err := b.verify(ctx, dir, files); err != nil {
		return err
	}
	b.hook("finalize")
	return b.finalize(ctx, dir, files)
}

// takeUploads copies the uploaded files into the release as root and removes the upload.
func (b *board) takeUploads(ctx context.Context, from, dir string, plan []PlannedFile) error {
	var s strings.Builder
	s.WriteString("set -e\n")
	byMode := map[os.FileMode]*dirBatch{}
	var modes []os.FileMode
	for _, p := range plan {
		if p.LinkFrom != "" {
			continue
		}
		if byMode[p.Mode] == nil {
			byMode[p.Mode] = &dirBatch{}
			modes = append(modes, p.Mode)
		}
		byMode[p.Mode].add(path.Join(from, p.Name), path.Join(dir, p.Name))
	}
	for _, m := range modes {
		byMode[m].write(&s, func(srcs, dst string) string { return fmt.Sprintf("install -m %o %s %s", m, srcs, dst) })
	}
	s.WriteString("rm -rf " + shq(from) + "\n")
	if _, err := b.runRoot(ctx, "sh -s", strings.NewReader(s.String())); err != nil {
		return fmt.Errorf("copy the upload into release %s: %w", path.Base(dir), err)
	}
	return nil
}

// linkExisting hard-links (or copies, across filesystems) files the board already has.
func (b *board) linkExisting(ctx context.Context, dir string, res *Result) error {
	var script strings.Builder
	script.WriteString("set -e\nmkdir -p " + shq(dir) + "\n")
	dirs := map[string]bool{}
	links := &dirBatch{}
	for _, p := range res.Plan {
		if d := path.Dir(p.Name); d != "." && !dirs[d] {
			dirs[d] = true
			script.WriteString("mkdir -p " + shq(path.Join(dir, d)) + "\n")
		}
		if p.LinkFrom == "" {
			continue
		}
		links.add(p.LinkFrom, path.Join(dir, p.Name))
		res.Linked++
	}
	links.write(&script, func(srcs, dst string) string {
		return fmt.Sprintf("{ ln -f %s %s 2>/dev/null || cp -p %s %s; }", srcs, dst, srcs, dst)
	})
	if _, err := b.runRoot(ctx, "sh -s", strings.NewReader(script.String())); err != nil {
		return fmt.Errorf("create release %s: %w", path.Base(dir), err)
	}
	return nil
}

// dirBatch gathers file copies (source, destination) into shell commands of the form
// "CMD SRC... DIR/", one per destination directory and batch of sources, for the
// copies that keep the file's name; the others get a command each ("CMD SRC DST").
type dirBatch struct {
	dirs   []string            // destination directories, in first-use order
	byDir  map[string][]string // quoted sources per directory
	single [][2]string         // quoted (source, destination) pairs that rename
}

func (d *dirBatch) add(src, dst string) {
	if path.Base(src) != path.Base(dst) {
		d.single = append(d.single, [2]string{shq(src), shq(dst)})
		return
	}
	dir := path.Dir(dst)
	if d.byDir == nil {
		d.byDir = map[string][]string{}
	}
	if _, ok := d.byDir[dir]; !ok {
		d.dirs = append(d.dirs, dir)
	}
	d.byDir[dir] = append(d.byDir[dir], shq(src))
}

// batchFiles bounds one command's arguments well inside the board's ARG_MAX.
const batchFiles = 200

// write appends the commands; cmd renders one from its quoted sources and destination.
func (d *dirBatch) write(s *strings.Builder, cmd func(srcs, dst string) string) {
	for _, dir := range d.dirs {
		srcs := d.byDir[dir]
		for len(srcs) > 0 {
			n := min(len(srcs), batchFiles)
			s.WriteString(cmd(strings.Join(srcs[:n], " "), shq(dir)+"/") + "\n")
			srcs = srcs[n:]
		}
	}
	for _, p := range d.single {
		s.WriteString(cmd(p[0], p[1]) + "\n")
	}
}

// upload sends the files not on the board over SFTP, into dir under their names.
func (b *board) upload(ctx context.Context, dir string, plan []PlannedFile) (files int, sent int64, err error) {
	var total int64
	for _, p := range plan {
		if p.LinkFrom == "" {
			total += p.Size
		}
	}
	if !anyUpload(plan) {
		return 0, 0, nil
	}
	sc, err := b.c.SFTP()
	if err != nil {
		return 0, 0, err
	}
	progress := func(n int64) {
		sent += n
		if b.opts.Progress != nil {
			b.opts.Progress(sent, total)
		}
	}
	for _, p := range plan {
		if p.LinkFrom != "" {
			continue
		}
		remote := path.Join(dir, p.Name)
		if err := sc.MkdirAll(path.Dir(remote)); err != nil {
			return files, sent, fmt.Errorf("create %s on the board: %w", path.Dir(remote), err)
		}
		if err := uploadFile(ctx, sc, p.File, remote, progress); err != nil {
			return files, sent, err
		}
		files++
	}
	return files, sent, nil
}

func anyUpload(plan []PlannedFile) bool {
	for _, p := range plan {
		if p.LinkFrom == "" {
			return true
		}
	}
	return false
}

func uploadFile(ctx context.Context, sc *sftp.Client, f File, remote string, progress func(int64)) error {
	src, err := os.Open(f.Local)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := sc.OpenFile(remote, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("create %s on the board: %w", remote, err)
	}
	_, err = dst.ReadFromWithConcurrency(&countingReader{ctx: ctx, r: src, add: progress}, 0)
	if err == nil {
		err = dst.Chmod(f.Mode)
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", remote, err)
	}
	return nil
}

// countingReader reports progress and stops a transfer when ctx ends.
type countingReader struct {
	ctx context.Context
	r   io.Reader
	add func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	if n > 0 {
		c.add(int64(n))
	}
	return n, err
}

// verify checks every staged file's SHA-256 on the board.
func (b *board) verify(ctx context.Context, dir string, files []File) error {
	out, err := b.runRoot(ctx, "cd "+shq(dir)+" && sha256sum -c --quiet -", strings.NewReader(manifest(files)))
	if err != nil {
		var ce *CommandError
		if errors.As(err, &ce) && ce.Status > 0 {
			return fmt.Errorf("verify release %s on the board: digests differ: %s (rerun deploy; if it repeats, check the board's storage)",
				path.Base(dir), strings.TrimSpace(string(out)+" "+ce.Stderr))
		}
		return fmt.Errorf("verify release %s on the board: %w (is sha256sum installed?)", path.Base(dir), err)
	}
	return nil
}

// finalize writes the manifest, flushes, and marks the release complete last.
func (b *board) finalize(ctx context.Context, dir string, files []File) error {
	var s strings.Builder
	s.WriteString("set -e\ncd " + shq(dir) + "\n")
	fmt.Fprintf(&s, "cat > %s.part <<'PYNQ_MANIFEST_EOF'\n%sPYNQ_MANIFEST_EOF\n", manifestName, manifest(files))
	fmt.Fprintf(&s, "mv -f %s.part %s\nsync -f . 2>/dev/null || sync\n: > %s\n", manifestName, manifestName, completeName)
	if _, err := b.runRoot(ctx, "sh -s", strings.NewReader(s.String())); err != nil {
		return fmt.Errorf("complete release %s: %w", path.Base(dir), err)
	}
	return nil
}
