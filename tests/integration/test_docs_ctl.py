"""docs/leadscorectl.md holds every leadscorectl command's --help as the
build prints it (scripts/gen-docs writes the blocks), so the reference
cannot drift from the program; and every command it documents answers
--help with exit 0 and states its exit codes."""
import os
import re
import subprocess
import unittest

BUILD = os.environ.get('LS_BUILD_ROOT', 'build')
SOURCE_ROOT = os.environ.get('LS_SOURCE_ROOT', '.')

LEADSCORECTL = os.path.join(BUILD, 'tools', 'leadscorectl')
PAGE = os.path.join(SOURCE_ROOT, 'docs', 'leadscorectl.md')
COMMANDS = ['leadscorectl', 'tail', 'dead-letters', 'campaign', 'replay', 'simulate']


def help_text(cmd):
    argv = [LEADSCORECTL, '--help'] if cmd == 'leadscorectl' else [LEADSCORECTL, cmd, '--help']
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout


class DocsCtl(unittest.TestCase):
    def setUp(self):
        with open(PAGE, encoding='utf-8') as f:
            self.page = f.read()

    def block(self, cmd):
        m = re.search(r'<!-- help:%s:begin -->\n(.*?)<!-- help:%s:end -->' % (
            re.escape(cmd), re.escape(cmd)), self.page, re.S)
        self.assertIsNotNone(m, 'docs/leadscorectl.md has no help block for %s' % cmd)
        return m.group(1)

    def test_every_block_is_the_programs_help(self):
        for cmd in COMMANDS:
            with self.subTest(cmd=cmd):
                rc, out = help_text(cmd)
                self.assertEqual(rc, 0, '%s --help exits %d' % (cmd, rc))
                self.assertEqual(self.block(cmd), '```text\n' + out + '```\n',
                                 'docs/leadscorectl.md: %s --help differs from the '
                                 'program; run scripts/gen-docs' % cmd)

    def test_every_command_states_its_exit_codes(self):
        for cmd in COMMANDS:
            with self.subTest(cmd=cmd):
                self.assertRegex(help_text(cmd)[1], r'(?i)exit (status|codes)')

    def test_no_block_for_a_command_that_does_not_exist(self):
        names = re.findall(r'<!-- help:([a-z-]+):begin -->', self.page)
        self.assertEqual(sorted(names), sorted(COMMANDS))


if __name__ == '__main__':
    unittest.main()
