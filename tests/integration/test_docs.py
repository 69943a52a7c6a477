"""The documentation holds together: README.md stays short, and every
relative link in README.md and docs/ (pages and their anchors) points at
something that exists.

  * README.md is under 250 lines (issue 16: the README is the front door;
    reference text belongs under docs/), and its first commands are
    scripts/demo and scripts/test, both executable.
  * Every relative link target in README.md and docs/**/*.md exists
    (file or directory), resolved against the linking page's directory.
  * A link with an anchor into a Markdown page names one of its headings,
    slugged as GitHub does (lower case, punctuation dropped, spaces to
    hyphens, repeats suffixed -1, -2, ...).
  * Links inside code (fenced blocks, `inline`) are not links and are
    skipped; absolute URLs are not fetched.

Needs no server: runs with Debian's /usr/bin/python3 (meson test sets
LS_SOURCE_ROOT).
"""
import os
import re
import tempfile
import unittest

SOURCE = os.environ.get(
    'LS_SOURCE_ROOT',
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

README_MAX_LINES = 250


LINK = re.compile(r'\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)(?:\s+"[^"]*")?\)')


def pages(root=SOURCE):
    """README.md and every .md under docs/, as paths relative to root."""
    out = ['README.md']
    for d, _, files in os.walk(os.path.join(root, 'docs')):
        for f in sorted(files):
            if f.endswith('.md'):
                out.append(os.path.relpath(os.path.join(d, f), root))
    return sorted(out)


def strip_code(text):
    """text with fenced blocks and inline code blanked (line count kept)."""
    lines, fenced = [], False
    for line in text.split('\n'):
        if line.lstrip().startswith('```'):
            fenced = not fenced
            lines.append('')
            continue
        lines.append('' if fenced else re.sub(r'`[^`]*`', '``', line))
    return '\n'.join(lines)


def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r'[^\w\- ]', '', s)
    return s.replace(' ', '-')


def anchors(path):
    """The anchors GitHub makes for the headings of a Markdown file."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    seen, out, fenced = {}, set(), False
    for line in text.split('\n'):
        if line.lstrip().startswith('```'):
            fenced = not fenced
            continue
        m = None if fenced else re.match(r'^#{1,6}\s+(.*?)\s*#*\s*$', line)
        if m is None:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else '%s-%d' % (base, n))
    return out


def links(page, root=SOURCE):
    """[(line number, target)] of the relative links in page."""
    with open(os.path.join(root, page), encoding='utf-8') as f:
        text = strip_code(f.read())
    out = []
    for no, line in enumerate(text.split('\n'), 1):
        for m in LINK.finditer(line):
            target = m.group(1)
            if re.match(r'^[a-z][a-z0-9+.-]*:', target):
                continue  # http:, https:, mailto:
            out.append((no, target))
    return out


def broken(page, root=SOURCE):
    """Problems with page's links, one string each."""
    problems = []
    here = os.path.dirname(page)
    for no, target in links(page, root):
        path, _, anchor = target.partition('#')
        rel = os.path.normpath(os.path.join(here, path)) if path else page
        full = os.path.join(root, rel)
        where = '%s:%d: %s' % (page, no, target)
        if not os.path.exists(full):
            problems.append(where + ': no such file')
            continue
        if anchor and rel.endswith('.md') and anchor not in anchors(full):
            problems.append(where + ': no heading with that anchor in ' + rel)
    return problems


class Docs(unittest.TestCase):
    def test_readme_is_short(self):
        with open(os.path.join(SOURCE, 'README.md'), encoding='utf-8') as f:
            n = len(f.read().splitlines())
        self.assertLess(n, README_MAX_LINES,
                        'README.md has %d lines; move reference text to docs/' % n)

    def test_readme_starts_with_the_two_commands(self):
        with open(os.path.join(SOURCE, 'README.md'), encoding='utf-8') as f:
            text = f.read()
        m = re.search(r'```sh\n(.*?)```', text, re.S)
        self.assertIsNotNone(m, 'README.md has no sh block')
        cmds = [line.split()[0] for line in m.group(1).splitlines() if line.strip()]
        self.assertEqual(cmds, ['scripts/demo', 'scripts/test'])
        for c in cmds:
            self.assertTrue(os.access(os.path.join(SOURCE, c), os.X_OK), c)

    def test_every_relative_link_resolves(self):
        found = pages()
        self.assertIn('docs/ARCHITECTURE.md', found)
        problems, n = [], 0
        for page in found:
            n += len(links(page))
            problems += broken(page)
        self.assertGreater(n, 20, 'no links found: the parser is broken')
        self.assertEqual(problems, [], '\n'.join(problems))

    def test_the_checker_sees_broken_links(self):
        self.assertEqual(slug('Crashes, restarts and broker faults'),
                         'crashes-restarts-and-broker-faults')
        self.assertEqual(slug('Buckets borrow from the campaign (hierarchical prior)'),
                         'buckets-borrow-from-the-campaign-hierarchical-prior')
        with tempfile.TemporaryDirectory() as root:
            os.makedirs(os.path.join(root, 'docs'))
            with open(os.path.join(root, 'README.md'), 'w') as f:
                f.write('[ok](docs/a.md#two) [anchor](docs/a.md#three) [file](docs/b.md)\n'
                        '[web](https://example.com/x) `[code](docs/c.md)`\n'
                        '```\n[fenced](docs/d.md)\n```\n')
            with open(os.path.join(root, 'docs', 'a.md'), 'w') as f:
                f.write('# One\n## Two\n[back](../README.md) [self](#one) [gone](#four)\n')
            self.assertEqual(pages(root), ['README.md', 'docs/a.md'])
            self.assertEqual(broken('README.md', root), [
                'README.md:1: docs/a.md#three: no heading with that anchor in docs/a.md',
                'README.md:1: docs/b.md: no such file'])
            self.assertEqual(broken('docs/a.md', root), [
                'docs/a.md:3: #four: no heading with that anchor in docs/a.md'])

if __name__ == '__main__':
    unittest.main()
