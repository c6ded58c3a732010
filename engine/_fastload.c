/* The loader's native path (engine/load.py): libyaml's events to the same documents and source-map
 * blocks that engine.load._Builder builds, without a Python object per event (and without one per
 * list or mapping for its positions: they are blocks of one array, see engine.load.SourceMap).
 *
 * It handles the common file only: plain mappings and lists of untagged scalars. On anything else
 * (an anchor, an alias, a tag, a merge key, a key that is not a scalar, a key written twice, a
 * syntax error, a limit crossed, an error of the scalar resolver) it gives up and returns None;
 * engine/load.py then loads the file with the Python path, whose errors and positions are the
 * reference. Scalars are resolved by the Python resolver (the callable given), once per distinct
 * (text, implicit) pair of the file. It also tells whether the documents are plain JSON that orjson
 * writes as the standard library's json does (engine.evaluate.canonical_json, the policy version):
 * keys all text, values all text, booleans, None, 64-bit integers or finite floats written without
 * an exponent; this is found once per distinct scalar, so the version needs no walk over the values.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <yaml.h>

enum { DONE = 0, GIVE_UP = 1, FAILED = -1 };
/* the version of load()'s arguments and answer: engine/load.py uses the extension only when it agrees */
enum { INTERFACE = 3 };

/* ---- growable buffers of packed positions ---------------------------------------------------- */

typedef struct {
    int64_t *items;
    Py_ssize_t len, cap;
} Buf;

static int buf_push(Buf *b, int64_t v) {
    if (b->len == b->cap) {
        Py_ssize_t cap = b->cap ? b->cap * 2 : 16;
        int64_t *items = PyMem_Realloc(b->items, (size_t)cap * sizeof(int64_t));
        if (items == NULL) {
            PyErr_NoMemory();
            return FAILED;
        }
        b->items = items;
        b->cap = cap;
    }
    b->items[b->len++] = v;
    return DONE;
}

static void buf_free(Buf *b) {
    PyMem_Free(b->items);
    b->items = NULL;
    b->len = b->cap = 0;
}

/* ---- the resolved scalars of this file: (kind, text) -> value -------------------------------- */

typedef struct {
    uint64_t hash;        /* 0: empty slot */
    size_t len;
    int kind;             /* plain_implicit * 2 + quoted_implicit */
    char *text;
    PyObject *value;
    int64_t serial;       /* its place among the file's distinct scalars: what a shape names it by */
} Slot;

typedef struct {
    Slot *slots;
    size_t cap, used;
} Cache;

/* Python's own keyed hash of the bytes (SipHash with the process's random seed): a file cannot be
 * written so that its scalars crowd one probe run of the tables below (an unkeyed hash, whose low
 * bits depend only on the input's, could be). */
static uint64_t keyed_hash(const void *s, Py_ssize_t n, uint64_t salt) {
#if PY_VERSION_HEX >= 0x030E0000
    uint64_t h = (uint64_t)Py_HashBuffer(s, n);
#else
    uint64_t h = (uint64_t)_Py_HashBytes(s, n);
#endif
    h ^= salt * 0x9E3779B97F4A7C15ULL;
    return h ? h : 1;
}

static uint64_t text_hash(const unsigned char *s, size_t n, int kind) {
    return keyed_hash(s, (Py_ssize_t)n, (uint64_t)kind + 1);
}

static Slot *cache_find(Cache *c, const unsigned char *s, size_t n, int kind, uint64_t h) {
    size_t mask = c->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        Slot *slot = &c->slots[i];
        if (slot->hash == 0 || (slot->hash == h && slot->len == n && slot->kind == kind &&
                                memcmp(slot->text, s, n) == 0))
            return slot;
    }
}

static int cache_grow(Cache *c) {
    size_t cap = c->cap ? c->cap * 2 : 1024;
    Slot *slots = PyMem_Calloc(cap, sizeof(Slot));
    if (slots == NULL) {
        PyErr_NoMemory();
        return FAILED;
    }
    Cache bigger = {slots, cap, c->used};
    for (size_t i = 0; i < c->cap; i++) {
        Slot *old = &c->slots[i];
        if (old->hash)
            *cache_find(&bigger, (const unsigned char *)old->text, old->len, old->kind, old->hash) = *old;
    }
    PyMem_Free(c->slots);
    *c = bigger;
    return DONE;
}

static void cache_free(Cache *c) {
    for (size_t i = 0; i < c->cap; i++) {
        if (c->slots[i].hash) {
            PyMem_Free(c->slots[i].text);
            Py_DECREF(c->slots[i].value);
        }
    }
    PyMem_Free(c->slots);
    c->slots = NULL;
    c->cap = c->used = 0;
}

/* ---- shared lists and mappings: (kind, the shapes of its items) -> the one object ------------------ *
 * With ``share``, a small list or mapping written inside a flow list or mapping (``[a, {b: c}]``),
 * whose items are scalars or shared lists and mappings, is one object wherever it is written the same
 * way (as an alias would make it): the cells a large table repeats thousands of times, written in its
 * rows. (Only there: a row, unlike its cells, is seldom written twice, and trying every row costs.) A shape names a value: 2 * serial for a scalar, 2 * k + 1 for the k-th
 * shared list or mapping, -1 for a value that is not shared. */

enum { SHARE_ITEMS = 16 };      /* a list or mapping of more shapes than this is never shared */
enum { FLOW_DEPTHS = 256 };     /* flow styles kept for this many depths (deeper: nothing is shared) */

typedef struct {
    uint64_t hash;        /* 0: empty slot */
    int is_list;
    Py_ssize_t n;
    int64_t ids[SHARE_ITEMS];
    PyObject *value;
    int64_t shape;
} Shared;

typedef struct {
    Shared *slots;
    size_t cap, used;
} Shapes;

static uint64_t shape_hash(const int64_t *ids, Py_ssize_t n, int is_list) {
    return keyed_hash(ids, n * (Py_ssize_t)sizeof(int64_t), (uint64_t)(is_list + 2 * n) + 1);
}

static Shared *shapes_find(Shapes *t, const int64_t *ids, Py_ssize_t n, int is_list, uint64_t h) {
    size_t mask = t->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        Shared *slot = &t->slots[i];
        if (slot->hash == 0 || (slot->hash == h && slot->n == n && slot->is_list == is_list &&
                                memcmp(slot->ids, ids, (size_t)n * sizeof(int64_t)) == 0))
            return slot;
    }
}

static int shapes_grow(Shapes *t) {
    size_t cap = t->cap ? t->cap * 2 : 256;
    Shared *slots = PyMem_Calloc(cap, sizeof(Shared));
    if (slots == NULL) {
        PyErr_NoMemory();
        return FAILED;
    }
    Shapes bigger = {slots, cap, t->used};
    for (size_t i = 0; i < t->cap; i++) {
        Shared *old = &t->slots[i];
        if (old->hash)
            *shapes_find(&bigger, old->ids, old->n, old->is_list, old->hash) = *old;
    }
    PyMem_Free(t->slots);
    *t = bigger;
    return DONE;
}

static void shapes_free(Shapes *t) {
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].hash)
            Py_DECREF(t->slots[i].value);
    PyMem_Free(t->slots);
    t->slots = NULL;
    t->cap = t->used = 0;
}

/* ---- the builder ----------------------------------------------------------------------------- */

typedef struct {
    yaml_parser_t parser;
    PyObject *resolve;       /* resolve(text, (plain_implicit, quoted_implicit)) -> value */
    Buf flat;                /* the source map's blocks, each list's or mapping's once it is built */
    int64_t block;           /* the offset of the block of the value built last; -1: a scalar */
    PyObject *extents;       /* dict or NULL */
    Cache cache;
    PyObject **made;         /* the lists and mappings built, untracked by the GC until the end */
    Py_ssize_t made_len, made_cap;
    Buf *spans_at, *extents_at;  /* the buffers of the lists and mappings being built, by depth */
    const char *needs;       /* 128 flags: a plain scalar starting with this character may not be text; NULL: any */
    char needs_table[128];
    Py_ssize_t values, max_values;
    int depth, max_depth;
    int64_t last[3];         /* the extent of the value built last (with extents) */
    int plain;               /* every key text and every scalar plain_scalar so far */
    int share;               /* equal small lists and mappings made one object (see Shapes) */
    Shapes shapes;
    int64_t shape;           /* the shape of the value built last */
    Buf *shapes_at;          /* the shapes of the items of the lists and mappings being built, by depth */
    char flow_at[FLOW_DEPTHS];   /* whether the list or mapping being built at a depth is written in flow style */
} Builder;

static PyObject *array_one;    /* array('q', [0]): repeated to make an array of any length */

/* line << 20 | column, both from 1; a column past the 20 bits is kept at their largest value (the
 * Python path's ``_packed`` does the same), never carried into the line */
static inline int64_t packed(const yaml_mark_t *m) {
    int64_t column = (int64_t)m->column + 1;
    return (int64_t)(m->line + 1) << 20 | (column < 0xFFFFF ? column : 0xFFFFF);
}

/* A Python error: the Python path runs instead, except for errors that are not an Exception
 * (KeyboardInterrupt and the like), which propagate. */
static int python_failed(void) {
    if (PyErr_ExceptionMatches(PyExc_Exception)) {
        PyErr_Clear();
        return GIVE_UP;
    }
    return FAILED;
}

static int next(Builder *b, yaml_event_t *ev) {
    return yaml_parser_parse(&b->parser, ev) ? DONE : GIVE_UP;
}

/* array('q', <the buffer>), untracked by the GC (an array holds no references); NULL on an error */
static PyObject *to_array(const Buf *buf) {
    PyObject *arr = PySequence_Repeat(array_one, buf->len);
    Py_buffer view;
    int rc = arr == NULL ? -1 : PyObject_GetBuffer(arr, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS);
    if (rc == 0) {
        if (view.len == buf->len * (Py_ssize_t)sizeof(int64_t))
            memcpy(view.buf, buf->items, (size_t)view.len);
        else {
            PyErr_SetString(PyExc_SystemError, "array('q') items are not 64 bits");
            rc = -1;
        }
        PyBuffer_Release(&view);
    }
    if (rc < 0) {
        Py_XDECREF(arr);
        return NULL;
    }
    if (PyObject_GC_IsTracked(arr))
        PyObject_GC_UnTrack(arr);
    return arr;
}

/* to_array of the buffer as extents[id(owner)] */
static int keep(PyObject *dict, PyObject *owner, const Buf *buf) {
    PyObject *key = PyLong_FromVoidPtr(owner);
    PyObject *arr = key == NULL ? NULL : to_array(buf);
    int rc = arr == NULL ? -1 : PyDict_SetItem(dict, key, arr);
    Py_XDECREF(key);
    Py_XDECREF(arr);
    return rc < 0 ? python_failed() : DONE;
}

/* The block of a list or mapping whose entries are in ``span`` (its own position, then per item its
 * position and block, or per entry its key's and value's positions and the value's block), ``width``
 * numbers an entry, appended to the flat buffer: its own position, the number of entries, the entries.
 * Its offset becomes the block of the value built last. */
static int emit(Builder *b, const Buf *span, Py_ssize_t width) {
    int64_t offset = (int64_t)b->flat.len;
    int rc = buf_push(&b->flat, span->items[0]);
    if (rc == DONE)
        rc = buf_push(&b->flat, (int64_t)((span->len - 1) / width));
    for (Py_ssize_t i = 1; rc == DONE && i < span->len; i++)
        rc = buf_push(&b->flat, span->items[i]);
    b->block = offset;
    return rc;
}

/* A list just made, or a mapping complete: the GC need not look into it until the file is loaded
 * (a collection while loading would otherwise walk every row built so far, again and again). A
 * mapping is tracked only when it holds a list or a mapping, as CPython decides for every dict. */
static int made(Builder *b, PyObject *value) {
    if (!PyObject_GC_IsTracked(value))
        return DONE;
    if (b->made_len == b->made_cap) {
        Py_ssize_t cap = b->made_cap ? b->made_cap * 2 : 256;
        PyObject **more = PyMem_Realloc(b->made, (size_t)cap * sizeof(PyObject *));
        if (more == NULL) {
            PyErr_NoMemory();
            return FAILED;
        }
        b->made = more;
        b->made_cap = cap;
    }
    PyObject_GC_UnTrack(value);
    b->made[b->made_len++] = value;
    return DONE;
}

static int count_value(Builder *b) {
    return ++b->values > b->max_values ? GIVE_UP : DONE;
}

/* Whether orjson writes ``value`` as json.dumps does: text, a boolean, None, a 64-bit integer, or a
 * finite float whose repr has no exponent (orjson writes 1e16 and 0.00001 where json writes 1e+16 and
 * 1e-05; NaN and infinities as null). 1: plain, 0: not, FAILED: a Python error. */
static int plain_scalar(PyObject *value) {
    if (PyUnicode_CheckExact(value) || value == Py_None || value == Py_True || value == Py_False)
        return 1;
    if (PyLong_CheckExact(value)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (v == -1 && PyErr_Occurred())
            return FAILED;
        return overflow == 0;
    }
    if (PyFloat_CheckExact(value)) {
        if (!isfinite(PyFloat_AS_DOUBLE(value)))
            return 0;
        PyObject *repr = PyObject_Repr(value);
        const char *text = repr == NULL ? NULL : PyUnicode_AsUTF8(repr);
        int plain = text == NULL ? FAILED : strpbrk(text, "eE") == NULL;
        Py_XDECREF(repr);
        return plain;
    }
    return 0;
}

static int scalar(Builder *b, yaml_event_t *ev, PyObject **out) {
    if (ev->data.scalar.anchor != NULL || ev->data.scalar.tag != NULL)
        return GIVE_UP;
    const unsigned char *text = ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    int kind = (ev->data.scalar.plain_implicit == 1) * 2 + (ev->data.scalar.quoted_implicit == 1);
    uint64_t h = text_hash(text, n, kind);
    if ((b->cache.used + 1) * 2 > b->cache.cap && cache_grow(&b->cache) != DONE)
        return FAILED;
    Slot *slot = cache_find(&b->cache, text, n, kind, h);
    if (slot->hash == 0) {
        PyObject *str = PyUnicode_DecodeUTF8((const char *)text, (Py_ssize_t)n, "strict");
        PyObject *value = str;
        /* the resolver is asked unless its table says the value is the text: quoted, or plain
         * with a first character that no implicit resolver takes */
        if (str != NULL && !(b->needs != NULL && (kind == 1 || (kind == 2 && n > 0 && text[0] < 128 &&
                                                                !b->needs[text[0]])))) {
            value = PyObject_CallFunction(b->resolve, "O(OO)", str, kind & 2 ? Py_True : Py_False,
                                          kind & 1 ? Py_True : Py_False);
            Py_DECREF(str);
        }
        int plain = value == NULL ? 0 : plain_scalar(value);
        char *copy = value == NULL || plain == FAILED ? NULL : PyMem_Malloc(n ? n : 1);
        if (copy == NULL) {
            Py_XDECREF(value);
            if (value != NULL && plain != FAILED)
                PyErr_NoMemory();
            return python_failed();
        }
        b->plain &= plain;
        memcpy(copy, text, n);
        *slot = (Slot){h, n, kind, copy, value, (int64_t)b->cache.used};
        b->cache.used++;
    }
    Py_INCREF(slot->value);
    *out = slot->value;
    b->block = -1;
    b->shape = 2 * slot->serial;
    b->last[0] = packed(&ev->start_mark);
    b->last[1] = (int64_t)ev->start_mark.index;
    b->last[2] = (int64_t)ev->end_mark.index;
    return DONE;
}

static int build(Builder *b, yaml_event_t *ev, PyObject **out);

/* one item of a list, starting with ``ev`` */
static int item(Builder *b, PyObject *list, Buf *span, Buf *ext, yaml_event_t *ev) {
    PyObject *value = NULL;
    int rc = buf_push(span, packed(&ev->start_mark));
    if (rc == DONE)
        rc = build(b, ev, &value);
    if (rc == DONE && PyList_Append(list, value) < 0)
        rc = python_failed();
    Py_XDECREF(value);
    if (rc == DONE)
        rc = buf_push(span, b->block);
    if (rc == DONE && b->share)
        rc = buf_push(&b->shapes_at[b->depth], b->shape);
    for (int i = 0; rc == DONE && ext != NULL && i < 3; i++)
        rc = buf_push(ext, b->last[i]);
    return rc;
}

/* one entry of a mapping, starting with its key's event ``kev`` */
static int entry(Builder *b, PyObject *dict, Buf *span, Buf *ext, yaml_event_t *kev) {
    if (kev->type != YAML_SCALAR_EVENT)
        return GIVE_UP;         /* a key that is a list or a mapping, or an alias */
    if (kev->data.scalar.length == 2 && memcmp(kev->data.scalar.value, "<<", 2) == 0)
        return GIVE_UP;         /* a merge key */
    int64_t kpos = packed(&kev->start_mark);
    PyObject *key = NULL, *value = NULL;
    int rc = build(b, kev, &key);
    int64_t kshape = b->shape;
    if (rc == DONE && !PyUnicode_CheckExact(key))
        b->plain = 0;
    if (rc == DONE) {
        int seen = PyDict_Contains(dict, key);
        rc = seen < 0 ? python_failed() : seen ? GIVE_UP : DONE;      /* unhashable, or written twice */
    }
    yaml_event_t ev;
    if (rc == DONE && (rc = next(b, &ev)) == DONE) {
        int64_t vpos = packed(&ev.start_mark);
        rc = build(b, &ev, &value);
        yaml_event_delete(&ev);
        if (rc == DONE && PyDict_SetItem(dict, key, value) < 0)
            rc = python_failed();
        if (rc == DONE && (rc = buf_push(span, kpos)) == DONE && (rc = buf_push(span, vpos)) == DONE)
            rc = buf_push(span, b->block);
        if (rc == DONE && b->share && (rc = buf_push(&b->shapes_at[b->depth], kshape)) == DONE)
            rc = buf_push(&b->shapes_at[b->depth], b->shape);
        for (int i = 0; rc == DONE && ext != NULL && i < 3; i++)
            rc = buf_push(ext, b->last[i]);
    }
    Py_XDECREF(key);
    Py_XDECREF(value);
    return rc;
}

/* the items of a list or the entries of a mapping, up to the event that ends it (kept in ``end``) */
static int members(Builder *b, PyObject *value, Buf *span, Buf *ext, yaml_event_t *end, int is_list) {
    for (;;) {
        yaml_event_t ev;
        if (next(b, &ev) != DONE)
            return GIVE_UP;
        if (ev.type == (is_list ? YAML_SEQUENCE_END_EVENT : YAML_MAPPING_END_EVENT)) {
            *end = ev;
            return DONE;
        }
        int rc = (is_list ? item : entry)(b, value, span, ext, &ev);
        yaml_event_delete(&ev);
        if (rc != DONE)
            return rc;
    }
}

/* With ``share``: the list or mapping just built (``*value``, whose items' shapes are in the buffer of
 * this depth) replaced by the one object of its shape when there is one, else made that object; its
 * shape in ``b->shape`` (-1: not shared, as a list or mapping holding one that is not, or too many). A
 * list replaced is dropped from ``made`` (it was recorded there when it was made, at ``made_at``). */
static int shared(Builder *b, PyObject **value, int is_list, Py_ssize_t made_at) {
    const Buf *ids = &b->shapes_at[b->depth];
    if (ids->len > SHARE_ITEMS || b->depth >= FLOW_DEPTHS || !b->flow_at[b->depth - 1])
        return DONE;
    for (Py_ssize_t i = 0; i < ids->len; i++)
        if (ids->items[i] < 0)
            return DONE;
    if ((b->shapes.used + 1) * 2 > b->shapes.cap && shapes_grow(&b->shapes) != DONE)
        return FAILED;
    uint64_t h = shape_hash(ids->items, ids->len, is_list);
    Shared *slot = shapes_find(&b->shapes, ids->items, ids->len, is_list, h);
    if (slot->hash != 0) {
        if (is_list)
            b->made[made_at] = NULL;     /* freed below: never tracked again */
        Py_SETREF(*value, Py_NewRef(slot->value));
    } else {
        *slot = (Shared){.hash = h, .is_list = is_list, .n = ids->len, .value = Py_NewRef(*value),
                         .shape = 2 * (int64_t)b->shapes.used + 1};
        memcpy(slot->ids, ids->items, (size_t)ids->len * sizeof(int64_t));
        b->shapes.used++;
    }
    b->shape = slot->shape;
    return DONE;
}

static int collection(Builder *b, yaml_event_t *ev, PyObject **out) {
    int is_list = ev->type == YAML_SEQUENCE_START_EVENT;
    if (is_list ? (ev->data.sequence_start.anchor != NULL || ev->data.sequence_start.tag != NULL)
                : (ev->data.mapping_start.anchor != NULL || ev->data.mapping_start.tag != NULL))
        return GIVE_UP;
    if (++b->depth > b->max_depth)
        return GIVE_UP;
    int64_t own = packed(&ev->start_mark);
    Buf *span = &b->spans_at[b->depth];     /* the buffers of this depth, reused */
    Buf *ext = b->extents != NULL ? &b->extents_at[b->depth] : NULL;
    span->len = 0;
    if (b->share) {
        b->shapes_at[b->depth].len = 0;
        if (b->depth < FLOW_DEPTHS)
            b->flow_at[b->depth] = is_list ? ev->data.sequence_start.style == YAML_FLOW_SEQUENCE_STYLE
                                           : ev->data.mapping_start.style == YAML_FLOW_MAPPING_STYLE;
    }
    PyObject *value = is_list ? PyList_New(0) : PyDict_New();
    int rc = value == NULL ? python_failed() : buf_push(span, own);
    Py_ssize_t made_at = b->made_len;
    if (rc == DONE && is_list)
        rc = made(b, value);
    if (rc == DONE && ext != NULL) {
        ext->len = 0;
        if ((rc = buf_push(ext, own)) == DONE && (rc = buf_push(ext, (int64_t)ev->start_mark.index)) == DONE)
            rc = buf_push(ext, 0);
    }
    yaml_event_t end;
    if (rc == DONE && (rc = members(b, value, span, ext, &end, is_list)) == DONE) {
        if (ext != NULL) {
            ext->items[2] = (int64_t)end.end_mark.index;
            rc = keep(b->extents, value, ext);
            memcpy(b->last, ext->items, sizeof b->last);
        }
        PyObject *built = value;
        b->shape = -1;
        if (rc == DONE && b->share)
            rc = shared(b, &value, is_list, made_at);
        if (rc == DONE && !is_list && value == built)     /* (a mapping shared before was made then) */
            rc = made(b, value);
        if (rc == DONE)
            rc = emit(b, span, is_list ? 2 : 3);     /* its entries' blocks are in place before it */
        yaml_event_delete(&end);
    }
    b->depth--;
    if (rc != DONE) {
        Py_XDECREF(value);
        return rc;
    }
    *out = value;
    return DONE;
}

/* the value that starts with ``ev`` (the caller keeps and deletes ``ev``) */
static int build(Builder *b, yaml_event_t *ev, PyObject **out) {
    if (count_value(b) != DONE)
        return GIVE_UP;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return scalar(b, ev, out);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        return collection(b, ev, out);
    default:
        return GIVE_UP;      /* an alias */
    }
}

/* one document: appended to ``documents``, its position, block and extent to the buffers */
static int document(Builder *b, PyObject *documents, Buf *span, Buf *ext) {
    yaml_event_t ev;
    if (next(b, &ev) != DONE)
        return GIVE_UP;
    PyObject *value = NULL;
    int64_t pos = 0;
    int rc = DONE;
    if (ev.type == YAML_DOCUMENT_END_EVENT) {
        Py_INCREF(Py_None);
        value = Py_None;
        memset(b->last, 0, sizeof b->last);
        b->block = -1;
    } else {
        pos = packed(&ev.start_mark);
        rc = build(b, &ev, &value);
    }
    int ended = ev.type == YAML_DOCUMENT_END_EVENT;
    yaml_event_delete(&ev);
    if (rc == DONE && PyList_Append(documents, value) < 0)
        rc = python_failed();
    Py_XDECREF(value);
    if (rc == DONE && (rc = buf_push(span, pos)) == DONE)
        rc = buf_push(span, b->block);
    for (int i = 0; rc == DONE && ext != NULL && i < 3; i++)
        rc = buf_push(ext, b->last[i]);
    if (rc == DONE && !ended) {
        if (next(b, &ev) != DONE)
            return GIVE_UP;
        rc = ev.type == YAML_DOCUMENT_END_EVENT ? DONE : GIVE_UP;
        yaml_event_delete(&ev);
    }
    return rc;
}

static int stream(Builder *b, PyObject *documents) {
    Buf span = {0}, ext = {0};
    Buf *extp = b->extents != NULL ? &ext : NULL;
    yaml_event_t ev;
    int rc = next(b, &ev);
    if (rc == DONE) {
        rc = ev.type == YAML_STREAM_START_EVENT ? DONE : GIVE_UP;
        yaml_event_delete(&ev);
    }
    if (rc == DONE)
        rc = buf_push(&span, 0);
    for (int i = 0; rc == DONE && extp != NULL && i < 3; i++)
        rc = buf_push(extp, 0);
    while (rc == DONE) {
        if ((rc = next(b, &ev)) != DONE)
            break;
        yaml_event_type_t type = ev.type;
        yaml_event_delete(&ev);
        if (type == YAML_STREAM_END_EVENT)
            break;
        rc = type == YAML_DOCUMENT_START_EVENT ? document(b, documents, &span, extp) : GIVE_UP;
    }
    if (rc == DONE)
        rc = emit(b, &span, 2);     /* the documents' block, last: engine.load.SourceMap.root */
    if (rc == DONE && extp != NULL)
        rc = keep(b->extents, documents, extp);
    buf_free(&span);
    buf_free(&ext);
    return rc;
}

static PyObject *load(PyObject *self, PyObject *args) {
    PyObject *text, *documents, *extents, *resolve, *needs;
    Py_ssize_t max_values;
    int max_depth, share;
    if (!PyArg_ParseTuple(args, "UO!OOOnip:load", &text, &PyList_Type, &documents, &extents, &resolve, &needs,
                          &max_values, &max_depth, &share))
        return NULL;
    if (max_depth < 0 || max_depth > 10000) {
        PyErr_SetString(PyExc_ValueError, "max_depth must be from 0 to 10000");
        return NULL;
    }
    if (extents != Py_None && !PyDict_Check(extents)) {
        PyErr_SetString(PyExc_TypeError, "extents must be a dict or None");
        return NULL;
    }
    Py_ssize_t size;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &size);
    if (utf8 == NULL)
        return python_failed() == GIVE_UP ? Py_NewRef(Py_None) : NULL;   /* lone surrogates */
    Builder b = {0};
    if (!yaml_parser_initialize(&b.parser))
        return PyErr_NoMemory();
    yaml_parser_set_input_string(&b.parser, (const unsigned char *)utf8, (size_t)size);
    b.resolve = resolve;
    b.extents = extents == Py_None ? NULL : extents;
    b.max_values = max_values;
    b.max_depth = max_depth;
    b.share = share && b.extents == NULL;     /* extents are kept per object: nothing is shared then */
    b.plain = 1;
    if (needs != Py_None) {
        Py_ssize_t count;
        const char *firsts = PyUnicode_Check(needs) ? PyUnicode_AsUTF8AndSize(needs, &count) : NULL;
        if (firsts == NULL) {
            yaml_parser_delete(&b.parser);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "needs must be a str or None");
            return NULL;
        }
        b.needs = b.needs_table;
        for (Py_ssize_t i = 0; i < count; i++) {
            unsigned char c = (unsigned char)firsts[i];
            if (c < 128)
                b.needs_table[c] = 1;
            else
                b.needs = NULL;     /* a resolver for a character beyond ASCII: resolve sees every scalar */
        }
    }
    b.spans_at = PyMem_Calloc((size_t)max_depth + 2, sizeof(Buf));
    b.shapes_at = PyMem_Calloc((size_t)max_depth + 2, sizeof(Buf));
    b.extents_at = PyMem_Calloc((size_t)max_depth + 2, sizeof(Buf));
    int rc = b.spans_at == NULL || b.shapes_at == NULL || b.extents_at == NULL ? (PyErr_NoMemory(), FAILED)
                                                                                : stream(&b, documents);
    for (Py_ssize_t i = 0; rc == DONE && i < b.made_len; i++)
        if (b.made[i] != NULL)
            PyObject_GC_Track(b.made[i]);     /* all alive: the documents hold them */
    PyMem_Free(b.made);
    for (int i = 0; i < max_depth + 2; i++) {
        if (b.spans_at != NULL)
            buf_free(&b.spans_at[i]);
        if (b.shapes_at != NULL)
            buf_free(&b.shapes_at[i]);
        if (b.extents_at != NULL)
            buf_free(&b.extents_at[i]);
    }
    PyMem_Free(b.spans_at);
    PyMem_Free(b.shapes_at);
    PyMem_Free(b.extents_at);
    yaml_parser_delete(&b.parser);
    cache_free(&b.cache);
    shapes_free(&b.shapes);
    PyObject *flat = rc == DONE ? to_array(&b.flat) : NULL;
    int64_t root = b.block;
    buf_free(&b.flat);
    if (rc == FAILED || (rc == DONE && flat == NULL && python_failed() == FAILED))
        return NULL;
    if (flat == NULL)
        return Py_NewRef(Py_None);
    return Py_BuildValue("NLO", flat, (long long)root, b.plain ? Py_True : Py_False);
}

static PyMethodDef methods[] = {
    {"load", load, METH_VARARGS,
     "load(text, documents, extents, resolve, needs, max_values, max_depth, share) -> (flat, root, plain) | None\n\n"
     "Append the documents of ``text`` to ``documents`` (and the extents of their lists and mappings "
     "to ``extents`` unless None), as engine.load._Builder does (``resolve(text, implicit)``: an "
     "untagged scalar's value; ``needs``: the first characters of a plain scalar that resolve needs to "
     "see, None when every scalar needs it; ``share``, without extents: a small list or mapping of "
     "scalars, or of such lists and mappings, is one object wherever it is written alike). Answers the source map's blocks (array('q')), the offset "
     "of the documents' block, and whether the documents are plain JSON that orjson writes as "
     "json.dumps does (keys text; values text, booleans, None, 64-bit integers, finite floats whose "
     "repr has no exponent); None, with the containers in any state, when the file needs the Python "
     "path."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "engine._fastload", NULL, -1, methods};

PyMODINIT_FUNC PyInit__fastload(void) {
    PyObject *array_module = PyImport_ImportModule("array");
    if (array_module == NULL)
        return NULL;
    array_one = PyObject_CallMethod(array_module, "array", "s[i]", "q", 0);
    Py_DECREF(array_module);
    if (array_one == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    /* what engine/load.py checks: an extension built from an older engine/_fastload.c is not used */
    if (m != NULL && PyModule_AddIntConstant(m, "INTERFACE", INTERFACE) < 0)
        Py_CLEAR(m);
    return m;
}
