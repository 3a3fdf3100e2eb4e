/* core/conf: the directive table, file and flag loading. */
#include "core/conf.h"

#include "core/arena.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct entry {
    const core_conf_def_t *def;
    char *strval; /* owned copy when type == STR */
} entry_t;

struct core_conf {
    entry_t *v;
    size_t n, cap;
};

static void list_clear(core_conf_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        core_free(l->items[i]);
    core_free(l->items);
    l->items = NULL;
    l->n = 0;
}

static int list_append(core_conf_list_t *l, const char *value)
{
    char **v, *s;

    if (value[0] == '\0')
        return 0;
    s = core_strdup(CORE_TAG_CORE, value);
    if (s == NULL)
        return -ENOMEM;
    v = core_realloc(CORE_TAG_CORE, l->items, (l->n + 1) * sizeof(*v));
    if (v == NULL) {
        core_free(s);
        return -ENOMEM;
    }
    v[l->n++] = s;
    l->items = v;
    return 0;
}

core_conf_t *core_conf_new(void)
{
    return core_calloc(CORE_TAG_CORE, 1, sizeof(core_conf_t));
}

void core_conf_free(core_conf_t **cp)
{
    core_conf_t *c = *cp;

    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++) {
        if (c->v[i].def->type == CORE_CONF_STR)
            *(char **)c->v[i].def->ptr = NULL;
        if (c->v[i].def->type == CORE_CONF_LIST)
            list_clear(c->v[i].def->ptr);
        core_free(c->v[i].strval);
    }
    core_free(c->v);
    core_free(c);
    *cp = NULL;
}

static entry_t *find(const core_conf_t *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcasecmp(c->v[i].def->name, name) == 0)
            return &c->v[i];
    return NULL;
}

const core_conf_def_t *core_conf_find(const core_conf_t *c, const char *name)
{
    entry_t *e = find(c, name);

    return e ? e->def : NULL;
}

const core_conf_def_t *core_conf_at(const core_conf_t *c, size_t i)
{
    return i < c->n ? c->v[i].def : NULL;
}

int core_conf_parse_size(const char *s, long long *out)
{
    char *end;
    long long v, mul = 1;

    errno = 0;
    if (!isdigit((unsigned char)*s))
        return -EINVAL;
    v = strtoll(s, &end, 10);
    if (errno != 0)
        return -EINVAL;
    if (*end != '\0') {
        if (strcasecmp(end, "k") == 0) mul = 1000;
        else if (strcasecmp(end, "kb") == 0) mul = 1024;
        else if (strcasecmp(end, "m") == 0) mul = 1000 * 1000;
        else if (strcasecmp(end, "mb") == 0) mul = 1024 * 1024;
        else if (strcasecmp(end, "g") == 0) mul = 1000LL * 1000 * 1000;
        else if (strcasecmp(end, "gb") == 0) mul = 1024LL * 1024 * 1024;
        else return -EINVAL;
    }
    if (v > LLONG_MAX / mul)
        return -EINVAL;
    *out = v * mul;
    return 0;
}

static int set_entry(entry_t *e, const char *value, char *err, size_t errlen)
{
    const core_conf_def_t *d = e->def;
    long long v;
    char *end;

    switch (d->type) {
    case CORE_CONF_STR: {
        char *s = core_strdup(CORE_TAG_CORE, value);

        if (s == NULL) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        core_free(e->strval);
        e->strval = s;
        *(char **)d->ptr = s;
        return 0;
    }
    case CORE_CONF_LIST:
        if (list_append(d->ptr, value) != 0) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        return 0;
    case CORE_CONF_INT:
        errno = 0;
        v = strtoll(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0') {
            snprintf(err, errlen, "'%s' is not an integer", value);
            return -EINVAL;
        }
        goto range;
    case CORE_CONF_SIZE:
        if (core_conf_parse_size(value, &v) != 0) {
            snprintf(err, errlen, "'%s' is not a size (e.g. 512, 64kb, 16mb)", value);
            return -EINVAL;
        }
    range:
        if ((d->min != 0 || d->max != 0) && (v < d->min || v > d->max)) {
            snprintf(err, errlen, "%lld is out of range [%lld, %lld]", v, d->min, d->max);
            return -EINVAL;
        }
        *(long long *)d->ptr = v;
        return 0;
    case CORE_CONF_BOOL:
        if (strcasecmp(value, "yes") == 0 || strcmp(value, "1") == 0 ||
            strcasecmp(value, "true") == 0) {
            *(int *)d->ptr = 1;
        } else if (strcasecmp(value, "no") == 0 || strcmp(value, "0") == 0 ||
                   strcasecmp(value, "false") == 0) {
            *(int *)d->ptr = 0;
        } else {
            snprintf(err, errlen, "'%s' is not yes or no", value);
            return -EINVAL;
        }
        return 0;
    case CORE_CONF_ENUM:
        for (int i = 0; d->choices[i] != NULL; i++) {
            if (strcasecmp(value, d->choices[i]) == 0) {
                *(int *)d->ptr = i;
                return 0;
            }
        }
        {
            size_t off = (size_t)snprintf(err, errlen, "'%s' is not one of", value);

            for (int i = 0; d->choices[i] != NULL && off < errlen; i++)
                off += (size_t)snprintf(err + off, errlen - off, " %s", d->choices[i]);
        }
        return -EINVAL;
    }
    return -EINVAL;
}

int core_conf_add(core_conf_t *c, const core_conf_def_t *defs, size_t n)
{
    char err[256];

    for (size_t i = 0; i < n; i++) {
        entry_t *e;
        int rv;

        if (find(c, defs[i].name) != NULL)
            return -EEXIST;
        if (c->n == c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 32;
            entry_t *v = core_realloc(CORE_TAG_CORE, c->v, cap * sizeof(*v));

            if (v == NULL)
                return -ENOMEM;
            c->v = v;
            c->cap = cap;
        }
        e = &c->v[c->n];
        e->def = &defs[i];
        e->strval = NULL;
        if (defs[i].type == CORE_CONF_LIST)
            memset(defs[i].ptr, 0, sizeof(core_conf_list_t));
        rv = set_entry(e, defs[i].defval ? defs[i].defval : "", err, sizeof(err));
        if (rv != 0)
            return rv;
        c->n++;
    }
    return 0;
}

int core_conf_set(core_conf_t *c, const char *name, const char *value,
                  char *err, size_t errlen)
{
    entry_t *e = find(c, name);

    if (e == NULL) {
        snprintf(err, errlen, "unknown directive '%s'", name);
        return -ENOENT;
    }
    return set_entry(e, value, err, errlen);
}

int core_conf_get(const core_conf_t *c, const char *name, char *buf, size_t len)
{
    entry_t *e = find(c, name);
    const core_conf_def_t *d;

    if (e == NULL)
        return -ENOENT;
    d = e->def;
    switch (d->type) {
    case CORE_CONF_STR:
        snprintf(buf, len, "%s", *(char **)d->ptr ? *(char **)d->ptr : "");
        break;
    case CORE_CONF_INT:
    case CORE_CONF_SIZE:
        snprintf(buf, len, "%lld", *(long long *)d->ptr);
        break;
    case CORE_CONF_BOOL:
        snprintf(buf, len, "%s", *(int *)d->ptr ? "yes" : "no");
        break;
    case CORE_CONF_ENUM:
        snprintf(buf, len, "%s", d->choices[*(int *)d->ptr]);
        break;
    case CORE_CONF_LIST: {
        const core_conf_list_t *l = d->ptr;
        size_t off = 0;

        if (len > 0)
            buf[0] = '\0';
        for (size_t i = 0; i < l->n && off < len; i++)
            off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "; " : "", l->items[i]);
        break;
    }
    }
    return 0;
}

/* Split a line into directive and value in place. Returns 0 (blank or
 * comment: *name == NULL), or -EINVAL for an unterminated quote. */
static int split_line(char *line, char **name, char **value)
{
    char *p = line, *q;

    *name = *value = NULL;
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '\0' || *p == '#')
        return 0;
    *name = p;
    while (*p && !isspace((unsigned char)*p))
        p++;
    if (*p)
        *p++ = '\0';
    while (isspace((unsigned char)*p))
        p++;
    q = p + strlen(p);
    while (q > p && isspace((unsigned char)q[-1]))
        *--q = '\0';
    if (*p == '"') {
        if (q - p < 2 || q[-1] != '"')
            return -EINVAL;
        q[-1] = '\0';
        p++;
    }
    *value = p;
    return 0;
}

int core_conf_load_file(core_conf_t *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char line[4096], why[256];
    int lineno = 0, rv = 0;

    if (f == NULL) {
        rv = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(-rv));
        return rv;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char *name, *value;

        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            snprintf(err, errlen, "%s:%d: line too long", path, lineno);
            rv = -EINVAL;
            break;
        }
        if (split_line(line, &name, &value) != 0) {
            snprintf(err, errlen, "%s:%d: directive '%s': unterminated quote", path, lineno, name);
            rv = -EINVAL;
            break;
        }
        if (name == NULL)
            continue;
        rv = core_conf_set(c, name, value, why, sizeof(why));
        if (rv == -ENOENT) {
            snprintf(err, errlen, "%s:%d: unknown directive '%s'", path, lineno, name);
            break;
        }
        if (rv != 0) {
            snprintf(err, errlen, "%s:%d: directive '%s': %s", path, lineno, name, why);
            break;
        }
    }
    fclose(f);
    return rv;
}

static int skipped(const char *name, size_t len, const char *const *skip)
{
    for (; skip != NULL && *skip != NULL; skip++)
        if (strlen(*skip) == len && strncmp(*skip, name, len) == 0)
            return 1;
    return 0;
}

int core_conf_load_args(core_conf_t *c, int argc, char **argv,
                        const char *const *skip, char *err, size_t errlen)
{
    char why[256], name[128];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq, *value;
        size_t len;
        int rv;

        if (strncmp(a, "--", 2) != 0)
            continue; /* positional arguments are the caller's */
        a += 2;
        eq = strchr(a, '=');
        len = eq ? (size_t)(eq - a) : strlen(a);
        if (skipped(a, len, skip))
            continue;
        if (len >= sizeof(name)) {
            snprintf(err, errlen, "flag '--%.32s...' is too long", a);
            return -EINVAL;
        }
        memcpy(name, a, len);
        name[len] = '\0';
        if (eq != NULL) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            snprintf(err, errlen, "flag '--%s' needs a value", name);
            return -EINVAL;
        }
        rv = core_conf_set(c, name, value, why, sizeof(why));
        if (rv == -ENOENT) {
            snprintf(err, errlen, "unknown flag '--%s'", name);
            return rv;
        }
        if (rv != 0) {
            snprintf(err, errlen, "flag '--%s': %s", name, why);
            return rv;
        }
    }
    return 0;
}

void core_conf_print_help(const core_conf_t *c, FILE *out)
{
    int width = 24;

    /* one column for every name, however long the longest is */
    for (size_t i = 0; i < c->n; i++)
        if ((int)strlen(c->v[i].def->name) > width)
            width = (int)strlen(c->v[i].def->name);
    for (size_t i = 0; i < c->n; i++) {
        const core_conf_def_t *d = c->v[i].def;
        char def[64];

        if (d->flags & CORE_CONF_SECRET)
            snprintf(def, sizeof(def), "%s", (d->defval && d->defval[0]) ? "(set)" : "\"\"");
        else
            snprintf(def, sizeof(def), "%s", (d->defval && d->defval[0]) ? d->defval : "\"\"");
        fprintf(out, "  --%-*s %-14s %s%s\n", width, d->name, def, d->help,
                (d->flags & CORE_CONF_RUNTIME) ? " [runtime]" : "");
    }
}
