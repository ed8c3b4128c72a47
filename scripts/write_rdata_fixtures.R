# Write the R data files that tests/test_read_r.py reads with pylme.read_r, into
# tests/reference/rdata/, with provenance.json (R and lme4 versions, what each file holds, md5).
#
# Usage (from anywhere):  Rscript scripts/write_rdata_fixtures.R
#
# types.rds      a data frame with every column type read_r converts: a factor whose level order
#                is not alphabetical and has an unused level, an ordered factor, integer, double,
#                logical, character and Date columns, NA in each; automatic row names
# named.rds      a small data frame with character row names
# single.rda     types, alone, xz-compressed (the name may be left out)
# objects.RData  types, sleep (the first 20 rows of lme4's sleepstudy), m (a matrix),
#                fit (an lm fit, a list to Python): name= must pick one
# vector.rds     an integer vector: not a data frame
# sleepstudy.rds, cake.rds   lme4 1.1-31's data sets, as data(sleepstudy) and data(cake) give them
#                (cake$temperature is an ordered factor)

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

script_path <- function() {
  arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(arg) != 1) stop("run this script with Rscript")
  normalizePath(sub("^--file=", "", arg))
}

out_dir <- file.path(dirname(dirname(script_path())), "tests", "reference", "rdata")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)
out <- function(name) file.path(out_dir, name)

types <- data.frame(
  dose = factor(c("high", "low", "none", "low", NA, "high"),
                levels = c("none", "low", "high", "unused")),
  grade = factor(c("B", "A", "C", NA, "A", "B"), levels = c("C", "B", "A"), ordered = TRUE),
  count = c(3L, NA, 0L, -2L, 2147483647L, 7L),
  value = c(0.1, -2.5e-300, NA, 1e300, pi, -0),
  flag = c(TRUE, FALSE, NA, TRUE, FALSE, TRUE),
  label = c("a", "b\u00e9", NA, "", "a b", "z"),
  day = as.Date(c("2020-02-29", NA, "1969-12-31", "2000-01-01", "1970-01-01", "2038-01-19")),
  stringsAsFactors = FALSE)

named <- data.frame(x = c(1.5, 2.5), g = factor(c("u", "v")), row.names = c("first", "second"))

data(sleepstudy, package = "lme4")
data(cake, package = "lme4")
sleep <- head(sleepstudy, 20)
m <- matrix(1:6, 2)
fit <- lm(Reaction ~ Days, sleepstudy)

saveRDS(types, out("types.rds"))
saveRDS(named, out("named.rds"))
save(types, file = out("single.rda"), compress = "xz")
save(types, sleep, m, fit, file = out("objects.RData"))
saveRDS(1:3, out("vector.rds"))
saveRDS(sleepstudy, out("sleepstudy.rds"))
saveRDS(cake, out("cake.rds"))

files <- c("types.rds", "named.rds", "single.rda", "objects.RData", "vector.rds",
           "sleepstudy.rds", "cake.rds")
provenance <- list(
  script = "scripts/write_rdata_fixtures.R",
  R = R.version.string,
  lme4 = as.character(packageVersion("lme4")),
  files = lapply(setNames(files, files), function(f)
    list(md5 = unname(tools::md5sum(out(f))), bytes = file.size(out(f)))))
writeLines(toJSON(provenance, auto_unbox = TRUE, pretty = TRUE), out("provenance.json"))
cat("wrote", length(files), "files to", out_dir, "\n")
