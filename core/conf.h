/* core/conf: directives in the redis.conf style.
 *
 * A subsystem describes its directives in a table of core_conf_def_t whose
 * ptr fields point at storage it owns; core_conf_add() applies the defaults.
 * Values then come from a file of "directive value" lines and from
 * "--directive value" (or "--directive=value") flags; flags win because
 * they are applied last. Strings are owned by the core_conf_t. */
#ifndef CORE_CONF_H
#define CORE_CONF_H

#include <stddef.h>
#include <stdio.h>

typedef enum core_conf_type {
    CORE_CONF_STR,   /* ptr: char ** */
    CORE_CONF_INT,   /* ptr: long long *, within [min, max] */
    CORE_CONF_SIZE,  /* ptr: long long *, "64mb", "1gb", "512k", bytes */
    CORE_CONF_BOOL,  /* ptr: int *, yes/no */
    CORE_CONF_ENUM,  /* ptr: int *, index into choices */
    CORE_CONF_LIST,  /* ptr: core_conf_list_t *; each setting appends one
                      * item (repeatable directive); "" or a default of
                      * NULL/"" leaves the list empty */
} core_conf_type_t;

/* Storage of a CORE_CONF_LIST directive: items in the order they were set
 * (file lines first, then flags). Owned by the core_conf_t. */
typedef struct core_conf_list {
    char **items;
    size_t n;
} core_conf_list_t;

enum {
    CORE_CONF_RUNTIME = 1u << 0, /* CONFIG SET may change it while running */
    CORE_CONF_SECRET = 1u << 1,  /* never printed by --help or logs */
};

struct core_conf_def;
/* Called after a value changed at run time (CONFIG SET). Returns 0, or a
 * negative errno to report failure (the value stays changed). */
typedef int (*core_conf_change_cb)(const struct core_conf_def *def, void *arg);

typedef struct core_conf_def {
    const char *name;
    core_conf_type_t type;
    const char *defval;          /* as text, parsed like a file value */
    const char *help;            /* one line for --help */
    void *ptr;                   /* storage, borrowed */
    long long min, max;          /* INT and SIZE; both 0: unbounded */
    const char *const *choices;  /* ENUM, NULL-terminated */
    unsigned flags;
    core_conf_change_cb on_change;
    void *arg;
} core_conf_def_t;

typedef struct core_conf core_conf_t;

core_conf_t *core_conf_new(void);
void core_conf_free(core_conf_t **cp);

/* Register n directives (the table is borrowed and must outlive c) and set
 * each to its default. Returns 0, -EEXIST for a duplicate name, -EINVAL if
 * a default does not parse, -ENOMEM. */
int core_conf_add(core_conf_t *c, const core_conf_def_t *defs, size_t n);

/* Set a directive from text (a LIST directive appends value as one more
 * item). Returns 0; -ENOENT for an unknown name;
 * -EINVAL for a bad value (err gets a one-line reason). */
int core_conf_set(core_conf_t *c, const char *name, const char *value,
                  char *err, size_t errlen);

/* Render the current value as text into buf (a LIST: its items joined by
 * "; "). Returns 0 or -ENOENT. */
int core_conf_get(const core_conf_t *c, const char *name, char *buf, size_t len);

/* Look up a directive; NULL if unknown. */
const core_conf_def_t *core_conf_find(const core_conf_t *c, const char *name);

/* Iterate: the i-th registered directive, NULL past the end. */
const core_conf_def_t *core_conf_at(const core_conf_t *c, size_t i);

/* Load a file. Blank lines and lines starting with '#' are skipped; a value
 * may be double-quoted. Returns 0, or a negative errno with err set to
 * "FILE:LINE: unknown directive 'x'" / "FILE:LINE: directive 'x': reason" /
 * "FILE: strerror". */
int core_conf_load_file(core_conf_t *c, const char *path, char *err, size_t errlen);

/* Apply "--name value" and "--name=value" flags from argv[1..argc). Flags
 * listed in skip (NULL-terminated, e.g. "help") are ignored. Returns 0 or
 * -ENOENT / -EINVAL with err naming the flag. */
int core_conf_load_args(core_conf_t *c, int argc, char **argv,
                        const char *const *skip, char *err, size_t errlen);

/* Print every directive with its default and help line. */
void core_conf_print_help(const core_conf_t *c, FILE *out);

/* Parse a size such as "100", "64k", "64kb", "16mb", "1gb" into bytes.
 * Returns 0 or -EINVAL. */
int core_conf_parse_size(const char *s, long long *out);

#endif
