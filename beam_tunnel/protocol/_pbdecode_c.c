/* The PlainBuffer decoder's hot loop in C: an optional twin of
 * _pbdecode.decode_many (see that module for the format notes).
 *
 * It only ever succeeds: for any input the pure-Python decoder would refuse,
 * and for the rare shapes it does not handle itself (an EXTENSION other than
 * the plain SEQ_INFO one, inputs that are not bytes), it returns None and the
 * caller runs the pure-Python decoder on the whole batch. That keeps every
 * error, its message, offset, cell and index, exactly as Python reports them,
 * while this file only has to be at least as strict as Python.
 *
 * The objects built are the ones Python builds: tuple subclasses filled as
 * tuple.__new__ fills them, ints, floats, bools, str, bytes and the sentinel
 * objects handed to configure().
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static uint8_t crc_table[256];

/* Set once by configure(): what the Python decoder uses for these. */
static PyObject *inf_min;
static PyObject *inf_max;
static PyObject *auto_increment;
static PyTypeObject *sequence_type;

/* Cells per row whose names are remembered from the previous row. */
#define NAME_SLOTS 64

typedef struct {
    const unsigned char *raw; /* points into an input the caller keeps alive */
    Py_ssize_t length;
    PyObject *name;
    uint8_t crc;
} NameSlot;

static void
build_crc_table(void)
{
    for (int index = 0; index < 256; index++) {
        unsigned crc = (unsigned)index;
        for (int bit = 0; bit < 8; bit++) {
            crc = (crc & 0x80) ? ((crc << 1) ^ 0x07) & 0xFF : (crc << 1) & 0xFF;
        }
        crc_table[index] = (uint8_t)crc;
    }
}

static inline uint8_t
crc_over(uint8_t crc, const unsigned char *bytes, Py_ssize_t count)
{
    for (Py_ssize_t i = 0; i < count; i++) {
        crc = crc_table[crc ^ bytes[i]];
    }
    return crc;
}

static inline uint32_t
read_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline uint64_t
read_u64(const unsigned char *p)
{
    return (uint64_t)read_u32(p) | ((uint64_t)read_u32(p + 4) << 32);
}

static inline int
is_tuple_type(PyObject *type)
{
    return PyType_Check(type) && PyType_IsSubtype((PyTypeObject *)type, &PyTuple_Type);
}

static PyObject *build_tuple(PyTypeObject *type, PyObject **items, Py_ssize_t count);

/* tuple.__new__(type, items): steals the references in items, even on failure.
 *
 * The result is left untracked by the cycle collector. Everything decoded
 * is an immutable tuple holding only atomic values (str, int, float, bool,
 * bytes, None), the caller's op and sentinel singletons, and tuples built
 * here before it: nothing in it can lead back to it, so it can never be
 * part of a cycle. (CPython untracks plain tuples like that itself, but
 * only when a collection gets to them, and never tuple subclasses.) A batch
 * is tens of thousands of them; tracked, the collections they set off took
 * about a third of the decode time. Types with a __dict__ stay tracked:
 * their instances can be given attributes. */
static PyObject *
new_tuple(PyTypeObject *type, PyObject **items, Py_ssize_t count)
{
    PyObject *result = build_tuple(type, items, count);
    if (result != NULL && type->tp_dictoffset == 0 && PyObject_GC_IsTracked(result)) {
        PyObject_GC_UnTrack(result);
    }
    return result;
}

static PyObject *
build_tuple(PyTypeObject *type, PyObject **items, Py_ssize_t count)
{
    PyObject *result;
    Py_ssize_t i;
    if (type == &PyTuple_Type) {
        result = PyTuple_New(count);
        if (result != NULL) {
            for (i = 0; i < count; i++) {
                PyTuple_SET_ITEM(result, i, items[i]);
            }
            return result;
        }
    }
    else {
#if PY_VERSION_HEX < 0x030E0000
        /* What tuple_subtype_new does with the plain tuple it builds first. */
        result = type->tp_alloc(type, count);
        if (result != NULL) {
            for (i = 0; i < count; i++) {
                PyTuple_SET_ITEM(result, i, items[i]);
            }
            return result;
        }
#else
        /* Newer tuples carry more state (a hash cache): let tuple.__new__ set it. */
        PyObject *plain = PyTuple_New(count);
        if (plain != NULL) {
            for (i = 0; i < count; i++) {
                PyTuple_SET_ITEM(plain, i, items[i]);
            }
            PyObject *args = PyTuple_Pack(1, plain);
            Py_DECREF(plain);
            if (args == NULL) {
                return NULL;
            }
            result = PyTuple_Type.tp_new(type, args, NULL);
            Py_DECREF(args);
            return result;
        }
#endif
    }
    for (i = 0; i < count; i++) {
        Py_XDECREF(items[i]);
    }
    return NULL;
}

static PyObject *
configure(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *seq, *low, *high, *auto_inc;
    if (!PyArg_ParseTuple(args, "OOOO:configure", &seq, &low, &high, &auto_inc)) {
        return NULL;
    }
    if (!is_tuple_type(seq)) {
        PyErr_Format(PyExc_TypeError, "configure: sequence type must be a tuple subclass, got %R", seq);
        return NULL;
    }
    Py_INCREF(seq);
    Py_INCREF(low);
    Py_INCREF(high);
    Py_INCREF(auto_inc);
    Py_XSETREF(sequence_type, (PyTypeObject *)seq);
    Py_XSETREF(inf_min, low);
    Py_XSETREF(inf_max, high);
    Py_XSETREF(auto_increment, auto_inc);
    Py_RETURN_NONE;
}

static const unsigned char HEADER[4] = {0x75, 0x00, 0x00, 0x00};
/* EXTENSION len=24, SEQ_INFO len=19, SEQ_INFO_EPOCH (see _pbdecode.SEQ_ONLY_START). */
static const unsigned char SEQ_ONLY_START[11] = {0x0b, 0x18, 0x00, 0x00, 0x00, 0x0c, 0x13, 0x00, 0x00, 0x00, 0x0d};

/* Jumps to give_up unless data[at] exists. */
#define NEED(at)                  \
    do {                          \
        if ((at) >= size) {       \
            goto give_up;         \
        }                         \
    } while (0)

static PyObject *
decode_many(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *inputs, *cell_type_obj, *ops, *put, *row_type_obj;
    int pk_optional, single;
    if (!PyArg_ParseTuple(args, "OppOOOO:decode_many", &inputs, &pk_optional, &single, &cell_type_obj, &ops, &put,
                          &row_type_obj)) {
        return NULL;
    }
    if (sequence_type == NULL || !(PyList_CheckExact(inputs) || PyTuple_CheckExact(inputs)) ||
        !is_tuple_type(cell_type_obj) || !is_tuple_type(row_type_obj) || !PyDict_CheckExact(ops)) {
        Py_RETURN_NONE;
    }
    PyTypeObject *cell_type = (PyTypeObject *)cell_type_obj;
    PyTypeObject *row_type = (PyTypeObject *)row_type_obj;

    NameSlot slots[NAME_SLOTS];
    memset(slots, 0, sizeof(slots));
    PyObject *input_tuple = NULL;
    PyObject *rows = PyList_New(0);
    PyObject *keys = NULL, *cells = NULL, *value = NULL, *timestamp = NULL;
    if (rows == NULL) {
        goto give_up;
    }
    /* A tuple keeps the inputs alive (the name slots point into them) even
     * if code run by a garbage collection changed the caller's list. */
    input_tuple = PyList_CheckExact(inputs) ? PyList_AsTuple(inputs) : Py_NewRef(inputs);
    if (input_tuple == NULL) {
        goto give_up;
    }
    Py_ssize_t input_count = PyTuple_GET_SIZE(input_tuple);
    PyObject **input_items = &PyTuple_GET_ITEM(input_tuple, 0);
    for (Py_ssize_t index = 0; index < input_count; index++) {
        PyObject *input = input_items[index];
        if (!PyBytes_CheckExact(input)) {
            goto give_up;
        }
        const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(input);
        Py_ssize_t size = PyBytes_GET_SIZE(input);
        if (size < 4 || memcmp(data, HEADER, 4) != 0) {
            goto give_up;
        }
        Py_ssize_t pos = 4;
        Py_ssize_t rows_before = PyList_GET_SIZE(rows);
        while (pos < size) {
            keys = PyList_New(0);
            cells = PyList_New(0);
            if (keys == NULL || cells == NULL) {
                goto give_up;
            }
            uint8_t row_crc = 0;
            int in_keys = 1;
            Py_ssize_t cell_number = 0;
            unsigned tag = data[pos];
            if (tag == 1) { /* ROW_PK */
                pos += 1;
                NEED(pos);
                tag = data[pos];
            }
            else if (!pk_optional || tag == 3) {
                goto give_up;
            }
            for (;;) {
                if (tag == 3) { /* CELL, then CELL_NAME len32 name */
                    NEED(pos + 5);
                    if (data[pos + 1] != 4) {
                        goto give_up;
                    }
                    uint32_t wire_length = read_u32(data + pos + 2);
                    pos += 6;
                    if ((size_t)wire_length > (size_t)(size - pos)) { /* unsigned: right on 32-bit too */
                        goto give_up;
                    }
                    Py_ssize_t length = (Py_ssize_t)wire_length;
                    const unsigned char *raw = data + pos;
                    PyObject *name; /* borrowed from a slot, or owned in fresh_name */
                    PyObject *fresh_name = NULL;
                    uint8_t crc;
                    NameSlot *slot = cell_number < NAME_SLOTS ? &slots[cell_number] : NULL;
                    if (slot != NULL && slot->name != NULL && slot->length == length &&
                        memcmp(slot->raw, raw, (size_t)length) == 0) {
                        name = slot->name;
                        crc = slot->crc;
                    }
                    else {
                        fresh_name = PyUnicode_DecodeUTF8((const char *)raw, length, NULL);
                        if (fresh_name == NULL) {
                            goto give_up;
                        }
                        crc = crc_over(0, raw, length);
                        name = fresh_name;
                        if (slot != NULL) {
                            Py_XSETREF(slot->name, fresh_name); /* the slot takes the reference */
                            fresh_name = NULL;
                            slot->raw = raw;
                            slot->length = length;
                            slot->crc = crc;
                        }
                    }
                    pos += length;
                    cell_number += 1;
                    /* From here on the name is held by a slot or by fresh_name. */
                    if (pos >= size) {
                        Py_XDECREF(fresh_name);
                        goto give_up;
                    }
                    tag = data[pos];
                    if (tag == 5) { /* CELL_VALUE len32 (not checked) type payload */
                        Py_ssize_t start = pos + 5;
                        if (start >= size) {
                            Py_XDECREF(fresh_name);
                            goto give_up;
                        }
                        unsigned kind = data[start];
                        if (kind == 3 || kind == 7) { /* STRING, BLOB */
                            if (start + 5 > size) {
                                Py_XDECREF(fresh_name);
                                goto give_up;
                            }
                            uint32_t wire_length = read_u32(data + start + 1);
                            if ((size_t)wire_length > (size_t)(size - (start + 5))) {
                                Py_XDECREF(fresh_name);
                                goto give_up;
                            }
                            Py_ssize_t value_length = (Py_ssize_t)wire_length;
                            pos = start + 5 + value_length;
                            if (kind == 3) {
                                value = PyUnicode_DecodeUTF8((const char *)data + start + 5, value_length, NULL);
                            }
                            else {
                                value = PyBytes_FromStringAndSize((const char *)data + start + 5, value_length);
                            }
                            if (value == NULL) {
                                Py_XDECREF(fresh_name);
                                goto give_up;
                            }
                            crc = crc_over(crc, data + start, pos - start);
                        }
                        else if (kind <= 1) { /* INTEGER, DOUBLE: 8 bytes, then the next tag */
                            if (start + 10 > size) {
                                Py_XDECREF(fresh_name);
                                goto give_up;
                            }
                            uint64_t bits = read_u64(data + start + 1);
                            if (kind == 0) {
                                value = PyLong_FromLongLong((long long)(int64_t)bits);
                            }
                            else {
                                double number;
                                memcpy(&number, &bits, sizeof number);
                                value = PyFloat_FromDouble(number);
                            }
                            if (value == NULL) {
                                Py_XDECREF(fresh_name);
                                goto give_up;
                            }
                            pos = start + 9;
                            crc = crc_over(crc, data + start, 9);
                        }
                        else if (kind == 2) { /* BOOLEAN: any nonzero byte is true */
                            if (start + 2 > size) {
                                Py_XDECREF(fresh_name);
                                goto give_up;
                            }
                            int truth = data[start + 1] != 0;
                            value = Py_NewRef(truth ? Py_True : Py_False);
                            pos = start + 2;
                            /* The checksum takes the boolean as 0/1, whatever byte was sent. */
                            crc = crc_table[crc_table[crc ^ 2] ^ truth];
                        }
                        else if (kind == 9 || kind == 10 || kind == 11) {
                            value = Py_NewRef(kind == 9 ? inf_min : kind == 10 ? inf_max : auto_increment);
                            pos = start + 1;
                            crc = crc_table[crc ^ kind];
                        }
                        else {
                            Py_XDECREF(fresh_name);
                            goto give_up;
                        }
                        if (pos >= size) {
                            Py_XDECREF(fresh_name);
                            goto give_up;
                        }
                        tag = data[pos];
                    }
                    PyObject *op = put;
                    unsigned op_byte = 0;
                    if (tag == 6) { /* CELL_TYPE */
                        if (pos + 2 >= size) {
                            Py_XDECREF(fresh_name);
                            goto give_up;
                        }
                        op_byte = data[pos + 1];
                        PyObject *key = PyLong_FromUnsignedLong(op_byte);
                        if (key == NULL) {
                            Py_XDECREF(fresh_name);
                            goto give_up;
                        }
                        op = PyDict_GetItemWithError(ops, key);
                        Py_DECREF(key);
                        if (op == NULL || op == Py_None) {
                            Py_XDECREF(fresh_name);
                            goto give_up;
                        }
                        pos += 2;
                        tag = data[pos];
                    }
                    if (tag == 7) { /* CELL_TIMESTAMP: 8 bytes, then the next tag */
                        if (pos + 10 > size) {
                            Py_XDECREF(fresh_name);
                            goto give_up;
                        }
                        timestamp = PyLong_FromLongLong((long long)(int64_t)read_u64(data + pos + 1));
                        if (timestamp == NULL) {
                            Py_XDECREF(fresh_name);
                            goto give_up;
                        }
                        crc = crc_over(crc, data + pos + 1, 8);
                        pos += 9;
                        tag = data[pos];
                    }
                    if (op != put) {
                        /* The checksum takes the op after the timestamp; the wire, before. */
                        crc = crc_table[crc ^ op_byte];
                    }
                    if (tag != 10 || pos + 2 >= size || data[pos + 1] != crc) { /* CELL_CHECKSUM */
                        Py_XDECREF(fresh_name);
                        goto give_up;
                    }
                    row_crc = crc_table[row_crc ^ crc];
                    pos += 2;
                    PyObject *entry;
                    if (!in_keys) {
                        PyObject *items[4] = {Py_NewRef(name), value != NULL ? value : Py_NewRef(Py_None),
                                              timestamp != NULL ? timestamp : Py_NewRef(Py_None), Py_NewRef(op)};
                        value = timestamp = NULL;
                        entry = new_tuple(cell_type, items, 4);
                        if (entry == NULL || PyList_Append(cells, entry) < 0) {
                            Py_XDECREF(entry);
                            Py_XDECREF(fresh_name);
                            goto give_up;
                        }
                    }
                    else if (value == NULL || op != put || timestamp != NULL) {
                        Py_XDECREF(fresh_name);
                        goto give_up;
                    }
                    else {
                        PyObject *items[2] = {Py_NewRef(name), value};
                        value = NULL;
                        entry = new_tuple(&PyTuple_Type, items, 2);
                        if (entry == NULL || PyList_Append(keys, entry) < 0) {
                            Py_XDECREF(entry);
                            Py_XDECREF(fresh_name);
                            goto give_up;
                        }
                    }
                    Py_DECREF(entry);
                    Py_XDECREF(fresh_name);
                    tag = data[pos];
                }
                else if (tag == 2 && in_keys) { /* ROW_DATA */
                    in_keys = 0;
                    pos += 1;
                    NEED(pos);
                    tag = data[pos];
                }
                else {
                    break;
                }
            }
            int deleted = tag == 8; /* DELETE_ROW_MARKER */
            if (deleted) {
                pos += 1;
                NEED(pos);
                tag = data[pos];
            }
            PyObject *sequence = NULL;
            if (tag == 11) { /* EXTENSION: only the one every stream record has */
                if (pos + 29 >= size || memcmp(data + pos, SEQ_ONLY_START, sizeof SEQ_ONLY_START) != 0 ||
                    data[pos + 15] != 14 || data[pos + 24] != 15) {
                    goto give_up;
                }
                PyObject *numbers[3] = {
                    PyLong_FromUnsignedLong(read_u32(data + pos + 11)),
                    PyLong_FromLongLong((long long)(int64_t)read_u64(data + pos + 16)),
                    PyLong_FromUnsignedLong(read_u32(data + pos + 25)),
                };
                if (numbers[0] == NULL || numbers[1] == NULL || numbers[2] == NULL) {
                    Py_XDECREF(numbers[0]);
                    Py_XDECREF(numbers[1]);
                    Py_XDECREF(numbers[2]);
                    goto give_up;
                }
                sequence = new_tuple(sequence_type, numbers, 3);
                if (sequence == NULL) {
                    goto give_up;
                }
                pos += 29;
                tag = data[pos];
            }
            /* ROW_CHECKSUM */
            if (tag != 9 || pos + 1 >= size || data[pos + 1] != crc_table[row_crc ^ deleted] ||
                (PyList_GET_SIZE(keys) == 0 && !pk_optional)) {
                Py_XDECREF(sequence);
                goto give_up;
            }
            pos += 2;
            PyObject *items[4] = {PyList_AsTuple(keys), PyList_AsTuple(cells), Py_NewRef(deleted ? Py_True : Py_False),
                                  sequence != NULL ? sequence : Py_NewRef(Py_None)};
            Py_CLEAR(keys);
            Py_CLEAR(cells);
            if (items[0] == NULL || items[1] == NULL) {
                for (int i = 0; i < 4; i++) {
                    Py_XDECREF(items[i]);
                }
                goto give_up;
            }
            for (int i = 0; i < 2; i++) { /* untracked, as new_tuple explains */
                if (PyObject_GC_IsTracked(items[i])) {
                    PyObject_GC_UnTrack(items[i]);
                }
            }
            PyObject *row = new_tuple(row_type, items, 4);
            if (row == NULL || PyList_Append(rows, row) < 0) {
                Py_XDECREF(row);
                goto give_up;
            }
            Py_DECREF(row);
            if (single) {
                if (pos != size) {
                    goto give_up;
                }
                break;
            }
        }
        if (single && PyList_GET_SIZE(rows) == rows_before) {
            goto give_up;
        }
    }
    for (int i = 0; i < NAME_SLOTS; i++) {
        Py_XDECREF(slots[i].name);
    }
    Py_DECREF(input_tuple);
    return rows;

give_up:
    /* Whatever went wrong (bad input or a failed allocation), the Python
     * decoder will meet it again and report it its own way. */
    PyErr_Clear();
    Py_XDECREF(rows);
    Py_XDECREF(keys);
    Py_XDECREF(cells);
    Py_XDECREF(value);
    Py_XDECREF(timestamp);
    Py_XDECREF(input_tuple);
    for (int i = 0; i < NAME_SLOTS; i++) {
        Py_XDECREF(slots[i].name);
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(sequence_type, inf_min, inf_max, auto_increment): the objects decode_many builds with."},
    {"decode_many", decode_many, METH_VARARGS,
     "decode_many(inputs, pk_optional, single, cell_type, ops, put, row_type) -> list or None.\n\n"
     "As _pbdecode.decode_many; None means: let the Python decoder do this batch\n"
     "(bad input, or a shape this decoder leaves to Python)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_pbdecode_c",
    .m_doc = "Optional C twin of beam_tunnel.protocol._pbdecode.decode_many.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__pbdecode_c(void)
{
    build_crc_table();
    return PyModule_Create(&module_def);
}
