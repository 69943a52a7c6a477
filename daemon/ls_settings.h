/*
 * ls_settings.h - the narrow settings structs the layers below are built
 * from, filled from the configuration.
 *
 * pipeline/ never sees ls_config: the daemon fills each module's settings
 * here and passes them down, at start and again after a SIGHUP reload
 * (for the keys a module takes live). Strings and specs in the results
 * point into cfg, which must outlive every use of them. Pure; no errors.
 */
#ifndef LS_SETTINGS_H
#define LS_SETTINGS_H

#include "ls_config.h"
#include "ls_pipeline.h"

/* ---- pipeline (ls_pipeline.h) ---- */

/* The pipeline's settings from cfg (keeps cfg by pointer, see the TODO in
 * ls_pipeline_settings). */
void ls_settings_pipeline(const ls_config *cfg, ls_pipeline_settings *out);

/* ---- end pipeline ---- */

#endif
