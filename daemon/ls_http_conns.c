/*
 * ls_http_conns.c - see ls_http_conns.h.
 *
 * Connections are a doubly linked list (removal in O(1), the expiry sweep
 * walks them all: a few thousand pointer hops a second). Per-address
 * counts are a chained hash table of small nodes, one per address with
 * open connections, freed when its count drops to zero, so a scan of
 * many source addresses leaves nothing behind.
 */
#include "ls_http_conns.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct addr_node {
	uint8_t key[16];
	unsigned count;
	struct addr_node *next;
} addr_node;

struct ls_http_conn {
	ls_http_conn *prev, *next;
	addr_node *addr;
	struct sockaddr_storage sa;
	int fd;
	int64_t start_ns;
	bool expired;
	bool bad_url;
};

struct ls_http_conns {
	pthread_mutex_t mu;
	unsigned total, per_address;
	size_t open;
	ls_http_conn *head;
	addr_node **buckets;
	size_t nbuckets; /* a power of 2 */
};

/* 16 bytes per address; IPv4 as IPv4-mapped IPv6, so both forms of one
   address share a count. Other families share the all-zero key. */
static void addr_key(const struct sockaddr *sa, uint8_t key[16])
{
	memset(key, 0, 16);
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &in->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		memcpy(key, &in6->sin6_addr, 16);
	}
}

static size_t addr_hash(const uint8_t key[16], size_t nbuckets)
{
	uint64_t h = 14695981039346656037ull; /* FNV-1a */
	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 1099511628211ull;
	return (size_t)(h & (nbuckets - 1));
}

static addr_node **addr_slot(ls_http_conns *t, const uint8_t key[16])
{
	addr_node **p = &t->buckets[addr_hash(key, t->nbuckets)];
	while (*p != NULL && memcmp((*p)->key, key, 16) != 0)
		p = &(*p)->next;
	return p;
}

ls_http_conns *ls_http_conns_new(unsigned total, unsigned per_address)
{
	if (total == 0 || per_address == 0)
		return NULL;
	ls_http_conns *t = calloc(1, sizeof *t);
	if (t == NULL)
		return NULL;
	t->total = total;
	t->per_address = per_address;
	t->nbuckets = 64;
	while (t->nbuckets < total / 4 && t->nbuckets < 65536)
		t->nbuckets *= 2;
	t->buckets = calloc(t->nbuckets, sizeof *t->buckets);
	if (t->buckets == NULL) {
		free(t);
		return NULL;
	}
	pthread_mutex_init(&t->mu, NULL);
	return t;
}

void ls_http_conns_free(ls_http_conns *t)
{
	if (t == NULL)
		return;
	for (ls_http_conn *c = t->head, *next; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	for (size_t i = 0; i < t->nbuckets; i++)
		for (addr_node *a = t->buckets[i], *next; a != NULL; a = next) {
			next = a->next;
			free(a);
		}
	free(t->buckets);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

ls_http_admit ls_http_conns_admit(ls_http_conns *t, const struct sockaddr *addr)
{
	uint8_t key[16];
	addr_key(addr, key);
	pthread_mutex_lock(&t->mu);
	ls_http_admit r = LS_HTTP_ADMIT_OK;
	if (t->open >= t->total) {
		r = LS_HTTP_ADMIT_TOTAL;
	} else {
		addr_node *a = *addr_slot(t, key);
		if (a != NULL && a->count >= t->per_address)
			r = LS_HTTP_ADMIT_ADDRESS;
	}
	pthread_mutex_unlock(&t->mu);
	return r;
}

ls_http_conn *ls_http_conns_add(ls_http_conns *t, const struct sockaddr *addr, int fd,
				int64_t now_ns)
{
	ls_http_conn *c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	uint8_t key[16];
	addr_key(addr, key);
	if (addr != NULL) {
		size_t len = addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
			   : addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : 0;
		memcpy(&c->sa, addr, len);
	}
	c->fd = fd;
	c->start_ns = now_ns;
	pthread_mutex_lock(&t->mu);
	addr_node **slot = addr_slot(t, key);
	if (*slot == NULL) {
		addr_node *a = calloc(1, sizeof *a);
		if (a == NULL) {
			pthread_mutex_unlock(&t->mu);
			free(c);
			return NULL;
		}
		memcpy(a->key, key, 16);
		*slot = a;
	}
	c->addr = *slot;
	c->addr->count++;
	c->next = t->head;
	if (t->head != NULL)
		t->head->prev = c;
	t->head = c;
	t->open++;
	pthread_mutex_unlock(&t->mu);
	return c;
}

void ls_http_conns_remove(ls_http_conns *t, ls_http_conn *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&t->mu);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		t->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	t->open--;
	if (--c->addr->count == 0) {
		addr_node **slot = addr_slot(t, c->addr->key);
		*slot = c->addr->next;
		free(c->addr);
	}
	pthread_mutex_unlock(&t->mu);
	free(c);
}

void ls_http_conns_restart(ls_http_conns *t, ls_http_conn *c, int64_t now_ns)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&t->mu);
	c->start_ns = now_ns;
	c->expired = false;
	pthread_mutex_unlock(&t->mu);
}

size_t ls_http_conns_expire(ls_http_conns *t, int64_t cutoff_ns,
			    void (*fn)(int fd, const struct sockaddr *addr, void *arg),
			    void *arg)
{
	size_t n = 0;
	pthread_mutex_lock(&t->mu);
	for (ls_http_conn *c = t->head; c != NULL; c = c->next) {
		if (c->expired || c->start_ns >= cutoff_ns)
			continue;
		fn(c->fd, (const struct sockaddr *)&c->sa, arg);
		c->expired = true;
		n++;
	}
	pthread_mutex_unlock(&t->mu);
	return n;
}

size_t ls_http_conns_open(ls_http_conns *t)
{
	pthread_mutex_lock(&t->mu);
	size_t n = t->open;
	pthread_mutex_unlock(&t->mu);
	return n;
}

unsigned ls_http_conns_from(ls_http_conns *t, const struct sockaddr *addr)
{
	uint8_t key[16];
	addr_key(addr, key);
	pthread_mutex_lock(&t->mu);
	addr_node *a = *addr_slot(t, key);
	unsigned n = a != NULL ? a->count : 0;
	pthread_mutex_unlock(&t->mu);
	return n;
}

unsigned ls_http_conns_total_limit(const ls_http_conns *t) { return t->total; }
unsigned ls_http_conns_address_limit(const ls_http_conns *t) { return t->per_address; }

void ls_http_conn_mark_bad_url(ls_http_conn *c)
{
	if (c != NULL)
		c->bad_url = true;
}

bool ls_http_conn_take_bad_url(ls_http_conn *c)
{
	if (c == NULL)
		return false;
	bool b = c->bad_url;
	c->bad_url = false;
	return b;
}
