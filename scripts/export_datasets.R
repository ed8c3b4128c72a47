# Export the data sets bundled with pylme to datasets/<Name>.csv and datasets/manifest.json.
#
# Usage (from anywhere):  Rscript scripts/export_datasets.R [path/to/classroom.csv]
# The classroom source defaults to $CLASSROOM_CSV, else /work/shared/external/classroom.csv
# (see /work/shared/external/README.md).
#
# Numbers are written in the shortest of %.15g, %.16g, %.17g that reads back to the identical
# double, so the CSVs hold R's values exactly; factors are written as their labels, and their
# level order (which is not always sorted: InstEval$dept) goes to the manifest.  Every file is
# read back and compared with identical() before the manifest is written.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

script_path <- function() {
  arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(arg) != 1) stop("run this script with Rscript")
  normalizePath(sub("^--file=", "", arg))
}

out_dir <- file.path(dirname(dirname(script_path())), "datasets")
args <- commandArgs(trailingOnly = TRUE)
classroom_src <- if (length(args) >= 1) args[[1]] else
  Sys.getenv("CLASSROOM_CSV", "/work/shared/external/classroom.csv")

lme4_version <- packageDescription("lme4")$Version
lme4_licence <- packageDescription("lme4")$License

# ---- writing -------------------------------------------------------------------------------

# Shortest "%.<d>g" (d = 15, 16, 17) that R reads back as the identical double; NA stays NA.
format_double <- function(x) {
  if (any(is.nan(x) | is.infinite(x))) stop("non-finite values are not supported")
  out <- rep(NA_character_, length(x))
  for (d in 15:17) {
    todo <- which(!is.na(x) & is.na(out))
    if (length(todo) == 0) break
    s <- sprintf(paste0("%.", d, "g"), x[todo])
    good <- as.numeric(s) == x[todo]
    out[todo[good]] <- s[good]
  }
  stopifnot(identical(is.na(out), is.na(x)))
  out
}

column_type <- function(v) {
  if (is.ordered(v)) "ordered"
  else if (is.factor(v)) "factor"
  else if (is.integer(v)) "integer"
  else if (is.double(v)) "numeric"
  else stop("unsupported column class: ", class(v)[1])
}

as_text <- function(v) {
  switch(column_type(v),
         numeric = format_double(v),
         integer = as.character(v),
         as.character(v))
}

write_dataset <- function(df, name) {
  text <- as.data.frame(lapply(df, as_text), stringsAsFactors = FALSE, optional = TRUE)
  quoted <- which(vapply(df, is.factor, logical(1)))
  path <- file.path(out_dir, paste0(name, ".csv"))
  write.csv(text, path, row.names = FALSE, na = "", quote = quoted, fileEncoding = "UTF-8")
  path
}

# ---- checking ------------------------------------------------------------------------------

read_back <- function(path, df) {
  classes <- vapply(df, function(v) switch(column_type(v), numeric = "numeric",
                                           integer = "integer", "character"), "")
  back <- read.csv(path, colClasses = classes, na.strings = "", check.names = FALSE,
                   encoding = "UTF-8")
  for (j in names(df)) {
    v <- df[[j]]
    if (is.factor(v)) back[[j]] <- factor(back[[j]], levels = levels(v), ordered = is.ordered(v))
  }
  back
}

check_round_trip <- function(path, df) {
  back <- read_back(path, df)
  if (!identical(names(back), names(df))) stop(path, ": column names differ")
  for (j in names(df)) {
    a <- df[[j]]
    b <- back[[j]]
    attributes(a) <- attributes(a)[c("levels", "class")]
    if (!identical(a, b)) stop(path, ": column ", j, " does not read back identically")
    if (is.double(a) && !isTRUE(all.equal(a, b, tolerance = 0))) stop(path, ": ", j, " differs")
  }
  invisible(TRUE)
}

# ---- manifest ------------------------------------------------------------------------------

column_entry <- function(v, name) {
  entry <- list(name = name, type = column_type(v))
  if (is.factor(v)) entry$levels <- I(levels(v))
  entry
}

manifest_entry <- function(df, name, meta) {
  c(list(name = name, file = paste0(name, ".csv")), meta,
    list(rows = nrow(df),
         columns = unname(Map(column_entry, df, names(df)))))
}

lme4_meta <- function(name, description) {
  list(source = sprintf("R package lme4 %s, data(%s)", lme4_version, name),
       version = lme4_version,
       licence = lme4_licence,
       description = description)
}

export <- function(df, name, meta) {
  df <- as.data.frame(df)
  rownames(df) <- NULL
  path <- write_dataset(df, name)
  check_round_trip(path, df)
  cat(sprintf("%-11s %6d rows  -> %s\n", name, nrow(df), path))
  manifest_entry(df, name, meta)
}

# ---- lme4 data sets ------------------------------------------------------------------------

lme4_sets <- list(
  Dyestuff = "Yield of dyestuff (grams of standard colour) from 5 preparations of each of 6 batches of an intermediate product",
  Dyestuff2 = "Simulated yields for 6 batches of 5 preparations (like Dyestuff, but with no between-batch variation)",
  Penicillin = "Diameter of growth-inhibition zone for 6 penicillin samples each tested on 24 plates",
  Pastes = "Strength of a chemical paste from 3 casks in each of 10 delivery batches, 2 assays per cask",
  sleepstudy = "Average reaction time per day of 18 subjects under sleep deprivation (days 0-9)",
  cake = "Breakage angle of chocolate cakes: 3 recipes, 6 baking temperatures, 15 replicates",
  cbpp = "Contagious bovine pleuropneumonia: new serological cases by herd and period, with herd size",
  InstEval = "Lecture/instructor evaluations (1-5) by students at ETH Zurich, with student, lecturer and department",
  VerbAgg = "Verbal aggression: 316 subjects' answers (no/perhaps/yes, r2 = N/Y) to 24 items (situation, behaviour, mode)",
  grouseticks = "Ticks counted on red grouse chicks: 403 chicks in 118 broods at 63 locations, by year and altitude",
  Arabidopsis = "Fruit counts of Arabidopsis plants: nutrient and clipping treatments, 9 populations, 24 genotypes, 2 racks"
)

manifest <- list()
for (name in names(lme4_sets)) {
  env <- new.env()
  data(list = name, package = "lme4", envir = env)
  df <- get(name, envir = env)
  manifest[[length(manifest) + 1]] <- export(df, name, lme4_meta(name, lme4_sets[[name]]))
}

# ---- mlmRev's Contraception (glmer examples) -----------------------------------------------

suppressPackageStartupMessages(library(mlmRev))
mlmrev_version <- packageDescription("mlmRev")$Version
contraception_meta <- list(
  source = sprintf("R package mlmRev %s, data(Contraception)", mlmrev_version),
  version = mlmrev_version,
  licence = packageDescription("mlmRev")$License,
  description = "Contraceptive use (N/Y) of 1934 women in 60 districts of Bangladesh, with age (centred), living children and urban/rural"
)
manifest[[length(manifest) + 1]] <- export(mlmRev::Contraception, "Contraception", contraception_meta)

# ---- classroom (WWGbook) -------------------------------------------------------------------

int_factor <- function(x) {
  factor(x, levels = sort(unique(x)), labels = as.character(sort(unique(x))))
}

recode_classroom <- function(raw) {
  stopifnot(all(raw$sex %in% 0:1), all(raw$minority %in% 0:1))
  df <- raw
  df$sex <- factor(ifelse(raw$sex == 1L, "F", "M"), levels = c("M", "F"))
  df$minority <- factor(ifelse(raw$minority == 1L, "Y", "N"), levels = c("N", "Y"))
  for (j in c("classid", "schoolid", "childid")) df[[j]] <- int_factor(raw[[j]])
  df
}

if (!file.exists(classroom_src)) stop("classroom source not found: ", classroom_src)
raw <- read.csv(classroom_src, na.strings = "")
classroom <- recode_classroom(raw)
stopifnot(nrow(classroom) == 1190, nlevels(classroom$classid) == 312,
          nlevels(classroom$schoolid) == 107, sum(is.na(classroom$mathknow)) == 109)
classroom_meta <- list(
  source = paste("WWGbook data set 'classroom' (West, Welch and Galecki, Linear Mixed Models, 2007),",
                 "public copy from GitHub frankcj6/Multi-Level-Nested-Model-Project classroom.csv,",
                 "via /work/shared/external (see its README.md)"),
  version = paste0("source file md5 ", unname(tools::md5sum(classroom_src))),
  licence = "WWGbook data, distributed with the R package WWGbook (GPL-2)",
  description = "Gain in mathematics score from kindergarten to grade 1 of 1190 students in 312 classes in 107 schools",
  recoding = paste("sex: 1 -> 'F', 0 -> 'M' (levels M, F); minority: 1 -> 'Y', 0 -> 'N' (levels N, Y);",
                   "classid, schoolid, childid: factors with levels their integer values sorted",
                   "numerically; other columns as in the source; mathknow missing (empty) in 109 rows")
)
manifest[[length(manifest) + 1]] <- export(classroom, "classroom", classroom_meta)

# ---- write the manifest --------------------------------------------------------------------

doc <- list(
  generated_by = "scripts/export_datasets.R",
  r_version = R.version.string,
  lme4_version = lme4_version,
  datasets = manifest
)
manifest_path <- file.path(out_dir, "manifest.json")
writeLines(toJSON(doc, auto_unbox = TRUE, pretty = TRUE), manifest_path, useBytes = TRUE)
stopifnot(identical(fromJSON(manifest_path, simplifyVector = FALSE)$datasets[[1]]$name, "Dyestuff"))
cat("manifest    ->", manifest_path, "\n")
