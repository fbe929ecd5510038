/*  =========================================================================
    ps_metrics_file - psworker's per-step metrics file (see ps_metrics_file.h)

    JSON Lines through jansson, one object a record, its keys in a fixed
    order; a value that is not known (staleness -1, a step without
    validation) is left out of the object, and an empty cell in CSV. A
    loss that is not finite is null in JSON (jansson refuses NaN) and
    "nan" in CSV. CSV is written by hand: every cell is a number, so
    nothing needs quoting.
    ========================================================================= */

#include "ps_metrics_file.h"

#include <jansson.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ps_metrics_file_t {
    FILE *file; //  the records' file, ours
    bool csv;   //  CSV, else JSON Lines
};

#define CSV_HEADER                                                                                 \
    "rank,epoch,step,clock,time,loss,examples_per_second,wait_seconds,staleness,"                  \
    "validation_loss,validation_accuracy,validation_examples\n"

static bool
s_ends_with (const char *text, const char *suffix)
{
    size_t length = strlen (text), suffix_length = strlen (suffix);
    return length >= suffix_length && strcmp (text + length - suffix_length, suffix) == 0;
}

ps_metrics_file_t *
ps_metrics_file_new (const char *path, char *error, size_t error_size)
{
    assert (path);
    ps_metrics_file_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (error, error_size, "out of memory");
        return NULL;
    }
    self->csv = s_ends_with (path, ".csv");
    self->file = fopen (path, "w");
    if (!self->file) {
        snprintf (error, error_size, "cannot write %s: %s", path, strerror (errno));
        free (self);
        return NULL;
    }
    if (self->csv && (fputs (CSV_HEADER, self->file) == EOF || fflush (self->file))) {
        snprintf (error, error_size, "cannot write %s: %s", path, strerror (errno));
        fclose (self->file);
        free (self);
        return NULL;
    }
    return self;
}

void
ps_metrics_file_destroy (ps_metrics_file_t **self_p)
{
    assert (self_p);
    if (!*self_p)
        return;
    fclose ((*self_p)->file);
    free (*self_p);
    *self_p = NULL;
}

bool
ps_metrics_file_csv (const ps_metrics_file_t *self)
{
    assert (self);
    return self->csv;
}

//  A real, or null when not finite (JSON has no NaN)
static json_t *
s_real (double value)
{
    return isfinite (value) ? json_real (value) : json_null ();
}

static int
s_write_json (FILE *file, const ps_metrics_record_t *record)
{
    json_t *object = json_object ();
    if (!object)
        return -1;
    json_object_set_new (object, "rank", json_integer (record->rank));
    json_object_set_new (object, "epoch", json_integer (record->epoch));
    json_object_set_new (object, "step", json_integer (record->step));
    json_object_set_new (object, "clock", json_integer (record->clock));
    json_object_set_new (object, "time", s_real (record->time));
    json_object_set_new (object, "loss", s_real (record->loss));
    json_object_set_new (object, "examples_per_second", s_real (record->examples_per_second));
    json_object_set_new (object, "wait_seconds", s_real (record->wait_seconds));
    if (record->staleness >= 0)
        json_object_set_new (object, "staleness", json_integer (record->staleness));
    if (record->validated) {
        json_object_set_new (object, "validation_loss", s_real (record->validation_loss));
        json_object_set_new (object, "validation_accuracy", s_real (record->validation_accuracy));
        json_object_set_new (object, "validation_examples",
                             json_integer ((json_int_t)record->validation_examples));
    }
    int rc = json_dumpf (object, file, JSON_COMPACT | JSON_REAL_PRECISION (7));
    json_decref (object);
    return rc == 0 && fputc ('\n', file) != EOF ? 0 : -1;
}

static int
s_write_csv (FILE *file, const ps_metrics_record_t *record)
{
    char staleness[24] = "";
    if (record->staleness >= 0)
        snprintf (staleness, sizeof staleness, "%" PRId64, record->staleness);
    char validation[96] = ",,";
    if (record->validated)
        snprintf (validation, sizeof validation, "%.7g,%.7g,%zu", record->validation_loss,
                  record->validation_accuracy, record->validation_examples);
    int written =
        fprintf (file, "%u,%d,%" PRId64 ",%" PRId64 ",%.7g,%.7g,%.7g,%.7g,%s,%s\n", record->rank,
                 record->epoch, record->step, record->clock, record->time, record->loss,
                 record->examples_per_second, record->wait_seconds, staleness, validation);
    return written < 0 ? -1 : 0;
}

int
ps_metrics_file_write (ps_metrics_file_t *self, const ps_metrics_record_t *record)
{
    assert (self);
    assert (record);
    int rc = self->csv ? s_write_csv (self->file, record) : s_write_json (self->file, record);
    return rc == 0 && fflush (self->file) == 0 ? 0 : -1;
}
