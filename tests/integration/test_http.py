"""The HTTP API of leadscored, driven by a real HTTP client (http.client)
against a daemon on a real Redis and the dev broker.

  * GET /v1/models/{model}: version, label counts and metrics; 404 for an
    unknown model.
  * GET /v1/leads/{lead_id}: features, profile, last published score and
    the current model's score and factors; 404 for an unknown lead.
  * Errors are JSON {"error", "detail"}: 401 without or with a wrong
    bearer token, 404 for unknown routes, 405 for other methods, 413 for
    an oversized body.

Run with Debian's /usr/bin/python3 and LS_BUILD_ROOT set to the meson build
dir (meson test does both).
"""
import http.client
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import avro_events  # noqa: E402
import lstest as tp  # noqa: E402
import testenv  # noqa: E402

TOKEN = 's3cret-token'


class Http(tp.DaemonSuite):
    @classmethod
    def setUpClass(cls):
        # more threads than the 2-core default of 1: the handlers'
        # shared state is exercised concurrently here
        cls.start_env('http', prefix='h:', auth_token=TOKEN,
                      env={'LEADSCORE_HTTP_THREADS': '3'},
                      listening=r'msg="listening" .*port=(\d+) threads=(\d+)',
                      ready_timeout=30)
        cls.threads = int(cls.listening.group(2))
        ts0 = int(time.time() * 1000) - 3600 * 1000
        (pp, po), = testenv.produce(cls.broker.bootstrap, 'leads.profile', [(
            'h-lead', avro_events.encode('profile', {
                'event_id': 'h-p', 'lead_id': 'h-lead', 'ts': ts0,
                'attributes': {'industry': 'saas', 'role': 'vp'},
                'metrics': {'employees': 300.0}}))])
        (wp, wo), = testenv.produce(cls.broker.bootstrap, 'leads.web', [(
            'h-lead', avro_events.encode('web', {
                'event_id': 'h-w', 'lead_id': 'h-lead', 'ts': ts0 + 1000,
                'type': 'PAGE_VIEW', 'url': 'https://x.test/pricing',
                'page_category': 'pricing', 'duration_ms': 5000,
                'session_id': 's'}))])
        # both events committed: a wait for the lead's key alone raced the
        # web event when the profile topic was read first under load
        tp.wait_offsets(cls.redis.client(), 'h:', 'http',
                        {('leads.profile', pp): po + 1, ('leads.web', wp): wo + 1},
                        30, cls.daemon)

    def call(self, method, path, token=TOKEN, body=None):
        c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=10)
        headers = {}
        if token is not None:
            headers['Authorization'] = 'Bearer ' + token
        c.request(method, path, body=body, headers=headers)
        resp = c.getresponse()
        data = resp.read()
        c.close()
        self.assertEqual(resp.getheader('Content-Type'), 'application/json',
                         (path, data))
        return resp.status, json.loads(data)

    def assert_error(self, status, body, want_status, want_error):
        self.assertEqual(status, want_status, body)
        self.assertEqual(body['error'], want_error)
        self.assertIsInstance(body['detail'], str)
        self.assertTrue(body['detail'])

    def test_threads(self):
        # http.threads from the environment, not the CPU-count default
        self.assertEqual(self.threads, 3)
        names = []
        for t in os.listdir('/proc/%d/task' % self.daemon.pid):
            with open('/proc/%d/task/%s/comm' % (self.daemon.pid, t)) as f:
                names.append(f.read().strip())
        self.assertEqual(sum(1 for n in names if n.startswith('MHD-worker')), 3, names)

    def test_model(self):
        status, body = self.call('GET', '/v1/models/conversion')
        self.assertEqual(status, 200, body)
        self.assertEqual(body['model'], 'conversion')
        for k in ('version', 'positives', 'negatives', 'labels_in_window'):
            self.assertIsInstance(body[k], int)
        self.assertEqual(body['eval_window'], 10000)
        self.assertIn('auc', body)          # null until labels arrive
        self.assertIs(body['shadow'], False)
        self.assertIs(body['mature'], False)   # no labels yet
        status, body = self.call('GET', '/v1/models/nope')
        self.assert_error(status, body, 404, 'unknown_model')

    def test_lead(self):
        status, body = self.call('GET', '/v1/leads/h-lead')
        self.assertEqual(status, 200, body)
        self.assertEqual(body['lead_id'], 'h-lead')
        self.assertEqual(body['attributes'], {'industry': 'saas', 'role': 'vp'})
        self.assertEqual(body['metrics'], {'employees': 300.0})
        self.assertEqual(body['features']['pricing_views_7d'], 1.0)
        conv = body['scores']['conversion']
        self.assertGreaterEqual(conv['version'], 1)
        self.assertTrue(0.0 <= conv['score'] <= 1.0)
        self.assertIn(conv['tier'], ('cold', 'warm', 'hot'))
        self.assertEqual(conv['label'], 'none')
        self.assertTrue(0.0 <= conv['current_score'] <= 1.0)
        self.assertIsInstance(conv['factors'], list)
        self.assertIs(conv['model_mature'], False)
        status, body = self.call('GET', '/v1/leads/nobody')
        self.assert_error(status, body, 404, 'unknown_lead')

    def test_errors(self):
        status, body = self.call('GET', '/v1/models/conversion', token=None)
        self.assert_error(status, body, 401, 'unauthorized')
        status, body = self.call('GET', '/v1/models/conversion', token='wrong')
        self.assert_error(status, body, 401, 'unauthorized')
        status, body = self.call('GET', '/v1/nothing/here')
        self.assert_error(status, body, 404, 'not_found')
        status, body = self.call('GET', '/v1/models/')
        self.assert_error(status, body, 404, 'not_found')
        status, body = self.call('DELETE', '/v1/models/conversion')
        self.assert_error(status, body, 405, 'method_not_allowed')
        status, body = self.call('POST', '/v1/leads/h-lead', body=b'x' * 70000)
        self.assert_error(status, body, 413, 'body_too_large')
        # the daemon is still serving after all of that
        status, _ = self.call('GET', '/v1/leads/h-lead')
        self.assertEqual(status, 200)


if __name__ == '__main__':
    unittest.main()
