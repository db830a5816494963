/* SPDX-License-Identifier: MIT */
#pragma once

/* Small helpers in the style of systemd's src/basic/macro.h: cleanup attributes instead of goto ladders. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_ __attribute__((noreturn))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Hand ownership of a pointer / fd to the caller: returns the value, leaves NULL / -1 behind. */
#define TAKE_PTR(p)                      \
        ({                               \
                __typeof__(p) _tp = (p); \
                (p) = NULL;              \
                _tp;                     \
        })
#define TAKE_FD(fd)             \
        ({                      \
                int _tf = (fd); \
                (fd) = -1;      \
                _tf;            \
        })

#define streq(a, b) (strcmp((a), (b)) == 0)
#define strcaseeq(a, b) (strcasecmp((a), (b)) == 0)

/* systemd's endswith(): a pointer to where suffix starts in s, or NULL when s does not end with it. */
static inline const char *endswith(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);
        return a >= b && streq(s + a - b, suffix) ? s + a - b : NULL;
}

/* Growable arrays, one way: make the heap array `array` (NULL or from malloc) hold at least `need`
 * elements, overflow-checked like reallocarray(). On success `array` points at the new block and that
 * pointer is returned; on failure NULL is returned and `array` is left untouched (still owned by the
 * caller). The call shape of systemd's GREEDY_REALLOC; it grows to exactly `need` (our arrays hold a
 * few dozen entries, and an exact size keeps _FORTIFY_SOURCE's view of the object honest). */
static inline void *greedy_realloc(void **p, size_t need, size_t size) {
        void *q = reallocarray(*p, need ? need : 1, size);
        if (q)
                *p = q;
        return q;
}
#define GREEDY_REALLOC(array, need) ((__typeof__(array)) greedy_realloc((void **) &(array), (need), sizeof((array)[0])))

/* strv: NULL-terminated arrays of malloc'ed strings. */
static inline char **strv_free(char **l) {
        if (l)
                for (char **i = l; *i; i++)
                        free(*i);
        free(l);
        return NULL;
}
static inline size_t strv_length(char *const *l) {
        size_t n = 0;

        while (l && l[n])
                n++;
        return n;
}
static inline void strv_freep(char ***l) {
        strv_free(*l);
}
#define _cleanup_strv_free_ _cleanup_(strv_freep)

/* Appends s (malloc'ed, e.g. fresh from strdup(): NULL means that failed) to the strv l of *n entries,
 * keeping it NULL-terminated; takes s in every case (freed on failure). 0 or -ENOMEM. */
static inline int strv_consume(char ***l, size_t *n, char *s) {
        if (!s || !GREEDY_REALLOC(*l, *n + 2)) {
                free(s);
                return -ENOMEM;
        }
        (*l)[(*n)++] = s;
        (*l)[*n] = NULL;
        return 0;
}
