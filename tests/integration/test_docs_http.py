"""Every example in docs/http-api.md, run as written against a real daemon.

The page's examples are fenced ```sh blocks, each a command line a user
would paste (curl, sometimes jq), optionally followed by a ```http block: the
documented response, as `curl -si` prints it (status line, some headers, a
blank line, the body). This test extracts them all in page order and runs
each block through one persistent `sh` session, as a user's terminal would
(so `DECISION=$(curl ... | jq -r .decision_id)` in one block serves the
next), with LEADSCORE (the base URL) and TOKEN (the bearer token) set, on a
leadscored with a real Redis and the dev broker, campaign `spring`
configured, lead `lead-42` fed by profile, web and email events, and a few
labelled leads so that the model's metrics are defined.

Each block must exit 0. Where a response is documented:
  * the status code must be the one shown;
  * every header shown must be there with that value;
  * a JSON body must have the documented shape: objects the same keys (a
    documented `"...": "..."` entry allows more), arrays elementwise (a
    trailing "..." element allows any number of elements like the one
    before it, including none), the same JSON types throughout (int and
    float are both numbers; null only where null is shown); strings and
    booleans equal to the documented ones, except strings under the keys in
    VARYING (ids, the chosen variant, tiers, feature names), which vary
    from run to run;
  * a text body (/metrics) must contain every documented `#` line, and a
    sample line for every documented sample's name and labels.
The number of blocks run must equal the number of ```sh fences on the page,
and the number checked the number of ```http fences, so no example is
silently skipped.

LS_DOCS_DUMP=1 prints each command's real output (for writing the page).

Run with Debian's /usr/bin/python3 and LS_BUILD_ROOT set to the meson build
dir (meson test does both).
"""
import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import avro_events  # noqa: E402
import lstest as tp  # noqa: E402
import testenv  # noqa: E402

PAGE = os.path.join(avro_events.SOURCE_ROOT, 'docs', 'http-api.md')
TOKEN = 'docs-example-token-0123456789'

# The campaign the page's examples use (bucketed by the lead's industry).
CAMPAIGNS = '''scoring:
  checkpoint_interval: 1s
campaigns:
  - id: spring
    arms: [a, b, c]
    rewards: {OPENED: 0.25, CLICKED: 1}
    context: [industry]
'''

# Keys whose string values differ from run to run.
VARYING = {'decision_id', 'variant', 'tier', 'name'}

MARK = '__LS_DOCS_BLOCK_END__'


def page_blocks(text):
    """[(line, command, response or None)] in page order."""
    lines = text.split('\n')
    out = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == '```http':
            raise AssertionError('%s:%d: a ```http block that follows no ```sh block'
                                 % (PAGE, i + 1))
        if lines[i].strip() != '```sh':
            i += 1
            continue
        start = i + 1
        j = start
        while lines[j].strip() != '```':
            j += 1
        cmd = '\n'.join(lines[start:j])
        k = j + 1
        while k < len(lines) and lines[k].strip() == '':
            k += 1
        resp = None
        if k < len(lines) and lines[k].strip() == '```http':
            m = k + 1
            while lines[m].strip() != '```':
                m += 1
            resp = '\n'.join(lines[k + 1:m])
            j = m
        out.append((start, cmd, resp))
        i = j + 1
    return out


def parse_http(text):
    """(status, {header: value}, body) of curl -si output or a page block."""
    text = text.replace('\r\n', '\n')
    while True:
        head, _, body = text.partition('\n\n')
        status = int(head.split('\n')[0].split()[1])
        if status >= 200:   # skip "100 Continue"
            break
        text = body
    headers = {}
    for h in head.split('\n')[1:]:
        name, _, value = h.partition(':')
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def shape_errors(doc, got, path='$', key=None):
    """Where got differs from the documented doc (see the module comment)."""
    if doc is None or got is None:
        return [] if doc is got else ['%s: documented %r, got %r' % (path, doc, got)]
    if isinstance(doc, bool) or isinstance(got, bool):
        if doc is not got:
            return ['%s: documented %r, got %r' % (path, doc, got)]
        return []
    if isinstance(doc, (int, float)):
        ok = isinstance(got, (int, float))
        return [] if ok else ['%s: documented a number, got %r' % (path, got)]
    if isinstance(doc, str):
        if not isinstance(got, str):
            return ['%s: documented a string, got %r' % (path, got)]
        if key in VARYING or doc == got:
            return []
        return ['%s: documented %r, got %r' % (path, doc, got)]
    if isinstance(doc, list):
        if not isinstance(got, list):
            return ['%s: documented an array, got %r' % (path, got)]
        open_end = bool(doc) and doc[-1] == '...'
        fixed = doc[:-1] if open_end else doc
        if not open_end and len(got) != len(fixed):
            return ['%s: documented %d elements, got %d' % (path, len(fixed), len(got))]
        if open_end and len(got) < len(fixed) - 1:
            return ['%s: documented at least %d elements, got %d'
                    % (path, len(fixed) - 1, len(got))]
        errs = []
        for n, g in enumerate(got):
            errs += shape_errors(fixed[min(n, len(fixed) - 1)], g, '%s[%d]' % (path, n), key)
        return errs
    if isinstance(doc, dict):
        if not isinstance(got, dict):
            return ['%s: documented an object, got %r' % (path, got)]
        open_obj = doc.get('...') == '...'
        errs = []
        for k, v in doc.items():
            if k == '...':
                continue
            if k not in got:
                errs.append('%s: documented key %r missing' % (path, k))
            else:
                errs += shape_errors(v, got[k], '%s.%s' % (path, k), k)
        if not open_obj:
            extra = sorted(set(got) - set(doc))
            if extra:
                errs.append('%s: keys not documented: %s' % (path, extra))
        return errs
    return ['%s: cannot compare %r' % (path, doc)]


def metrics_errors(doc_body, got_body):
    got_lines = got_body.split('\n')
    errs = []
    for line in doc_body.split('\n'):
        line = line.strip()
        if not line or line == '...':
            continue
        if line.startswith('#'):
            if line not in got_lines:
                errs.append('no line %r' % line)
            continue
        name = line.rsplit(' ', 1)[0]
        if not any(g.rsplit(' ', 1)[0] == name for g in got_lines if g):
            errs.append('no sample %r' % name)
    return errs


class Shell:
    """One sh session: blocks run in it in turn, sharing its variables."""

    def __init__(self, env, cwd):
        self.proc = subprocess.Popen(['sh'], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env, cwd=cwd)

    def run(self, cmd, timeout=60):
        self.proc.stdin.write(('%s\nprintf "\\n%s %%s\\n" "$?"\n' % (cmd, MARK)).encode())
        self.proc.stdin.flush()
        timer = threading.Timer(timeout, self.proc.kill)
        timer.start()
        out = []
        try:
            while True:
                line = self.proc.stdout.readline()
                if not line:
                    raise AssertionError('the shell died running:\n%s\noutput: %r'
                                         % (cmd, b''.join(out)))
                if line.startswith(MARK.encode()):
                    rc = int(line.split()[1])
                    break
                out.append(line)
        finally:
            timer.cancel()
        text = b''.join(out).decode()
        return rc, text[:-1] if text.endswith('\n') else text   # the printf's \n

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(10)
        self.proc.stdout.close()


class DocsHttp(tp.DaemonSuite):
    @classmethod
    def setUpClass(cls):
        for tool in ('curl', 'jq'):
            if shutil.which(tool) is None:
                raise AssertionError('%s is not installed; the examples in %s use it '
                                     '(scripts/debian-packages.txt lists it)' % (tool, PAGE))
        cls.start_env('docs', prefix='d:', auth_token=TOKEN, extra=CAMPAIGNS)
        bootstrap = cls.broker.bootstrap
        ts0 = int(time.time() * 1000) - 3600 * 1000
        ends = {}

        def send(topic, records):
            for (p, o) in testenv.produce(bootstrap, topic, records):
                ends[(topic, p)] = max(ends.get((topic, p), -1), o + 1)

        # labelled leads: pricing visitors convert, the others do not
        leads = ['lead-%d' % i for i in range(1, 13)]
        send('leads.web', [(lead, avro_events.encode('web', {
            'event_id': lead + '-w%d' % k, 'lead_id': lead, 'ts': ts0 + k * 1000,
            'type': 'PAGE_VIEW', 'url': 'https://example.com/p',
            'page_category': 'pricing' if n % 2 == 0 else 'blog',
            'duration_ms': 20000, 'session_id': lead + '-s'}))
            for n, lead in enumerate(leads) for k in range(1 + n % 3)])
        send('leads.outcome', [(lead, avro_events.encode('outcome', {
            'event_id': lead + '-o', 'lead_id': lead, 'ts': ts0 + 60000,
            'outcome': 'CONVERTED' if n % 2 == 0 else 'LOST', 'value': None}))
            for n, lead in enumerate(leads)])
        # the lead the examples read and decide for
        send('leads.profile', [('lead-42', avro_events.encode('profile', {
            'event_id': 'lead-42-p', 'lead_id': 'lead-42', 'ts': ts0,
            'attributes': {'industry': 'saas', 'role': 'vp'},
            'metrics': {'employees': 300.0}}))])
        send('leads.web', [('lead-42', avro_events.encode('web', {
            'event_id': 'lead-42-w%d' % k, 'lead_id': 'lead-42', 'ts': ts0 + 120000 + k,
            'type': 'PAGE_VIEW', 'url': 'https://example.com/pricing',
            'page_category': 'pricing', 'duration_ms': 45000,
            'session_id': 'lead-42-s'})) for k in range(3)])
        send('leads.email', [('lead-42', avro_events.encode('email', {
            'event_id': 'lead-42-e', 'lead_id': 'lead-42', 'ts': ts0 + 110000,
            'type': 'OPENED', 'campaign_id': 'newsletter'}))])
        tp.wait_offsets(cls.redis.client(), 'd:', 'docs', ends, 60, cls.daemon)
        # the model's metrics and the campaign are in the published snapshot
        deadline = time.monotonic() + testenv.scaled(60)
        while True:
            st, m = cls.get('/v1/models/conversion')
            sc, _ = cls.get('/v1/campaigns/spring')
            if st == 200 and m.get('auc') is not None and sc == 200:
                break
            if time.monotonic() > deadline:
                raise AssertionError('model metrics never defined: %s %s\n%s'
                                     % (st, m, cls.daemon.tail()))
            time.sleep(0.2)

    @classmethod
    def get(cls, path):
        c = http.client.HTTPConnection('127.0.0.1', cls.port, timeout=10)
        c.request('GET', path, headers={'Authorization': 'Bearer ' + TOKEN})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, json.loads(body)

    def test_every_example(self):
        with open(PAGE, encoding='utf-8') as f:
            text = f.read()
        blocks = page_blocks(text)
        n_sh = sum(1 for line in text.split('\n') if line.strip() == '```sh')
        n_http = sum(1 for line in text.split('\n') if line.strip() == '```http')
        # a command fenced under another name would run nowhere
        others = [n + 1 for n, line in enumerate(text.split('\n'))
                  if line.strip() in ('```bash', '```shell', '```console', '```zsh')]
        self.assertEqual(others, [], 'docs/http-api.md: fence commands as ```sh (lines)')
        env = dict(os.environ, LEADSCORE='http://127.0.0.1:%d' % self.port, TOKEN=TOKEN)
        sh = Shell(env, self.tmp.name)
        self.addCleanup(sh.close)
        ran = checked = 0
        failures = []
        for line, cmd, resp in blocks:
            rc, out = sh.run(cmd)
            ran += 1
            if os.environ.get('LS_DOCS_DUMP'):
                sys.stderr.write('--- %s:%d\n%s\n--> rc %d\n%s\n' % (PAGE, line, cmd, rc, out))
            where = 'docs/http-api.md:%d' % line
            if rc != 0:
                failures.append('%s: exit %d\n%s' % (where, rc, out))
                continue
            if resp is None:
                continue
            checked += 1
            errs = self.response_errors(resp, out)
            if errs:
                failures.append('%s: %s\n  command: %s\n  got: %s'
                                % (where, '; '.join(errs), cmd, out[:2000]))
        self.assertFalse(failures, "\n\n".join(failures))
        self.assertEqual(ran, n_sh, 'blocks run vs ```sh fences on the page')
        self.assertEqual(checked, n_http, 'responses checked vs ```http fences on the page')
        self.assertGreaterEqual(checked, 20)

    def response_errors(self, doc, out):
        try:
            want_status, want_headers, want_body = parse_http(doc)
        except (ValueError, IndexError):
            return ['the documented response does not start with a status line']
        try:
            status, headers, body = parse_http(out)
        except (ValueError, IndexError):
            return ['no HTTP response in the output (curl -si?)']
        errs = []
        if status != want_status:
            errs.append('status %d, documented %d' % (status, want_status))
        for k, v in want_headers.items():
            if headers.get(k) != v:
                errs.append('header %s: %r, documented %r' % (k, headers.get(k), v))
        if want_headers.get('content-type', '').startswith('text/plain'):
            return errs + metrics_errors(want_body, body)
        try:
            want = json.loads(want_body)
        except ValueError as e:
            return errs + ['the documented body is not JSON: %s' % e]
        try:
            got = json.loads(body)
        except ValueError:
            return errs + ['the body is not JSON']
        return errs + shape_errors(want, got)


if __name__ == '__main__':
    unittest.main()
