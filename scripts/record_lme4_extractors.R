# Record lme4's extractors for five fits into tests/reference/lme4_extractors.json.
#
# Usage (from anywhere):  Rscript scripts/record_lme4_extractors.R
#
# Fits (lme4's own data sets; classroom from the project's datasets/classroom.csv, typed as
# datasets/manifest.json types it):
#   sleepstudy_corr  Reaction ~ Days + (Days|Subject)                                    REML
#   penicillin       diameter ~ 1 + (1|plate) + (1|sample)                               REML
#   sleepstudy_uncorr Reaction ~ Days + (Days||Subject)                                  REML
#   cake             angle ~ recipe * temperature + (1|recipe:replicate)                 REML
#   classroom_ml     mathgain ~ mathkind + minority + ses + (1|classid) + (1|schoolid)   ML
#
# For each fit it records fixef, ranef (with condVar / postVar), coef, as.data.frame(VarCorr),
# sigma, logLik (and df), AIC, BIC, deviance(REML = FALSE), REMLcrit, fitted, residuals
# (response, pearson), vcov, getME theta / Lind / Gp / Zt (dims, nnz), ngrps, predictions
# (fitted rows, re.form = NA, and per case extras), update(fm, REML = FALSE) (or TRUE for the
# ML fit), refit() to two new responses, and the captured text of print(fm) and summary(fm).
#
# Every double is written with the shortest of %.15g / %.16g / %.17g that reads back to the
# identical double, so the JSON holds R's values exactly.
#
# Reproducibility: the values are not bit-for-bit stable between R sessions.  On the recording
# machine (reference BLAS) the Penicillin fit's theta varied between runs at ~1e-10 relative, and
# refit(fm, 2 * y) then stopped either at the fit's own theta or at theta[sample] = 3.51239
# (3.6e-5 relative away, REMLcrit lower by 8e-9: a flat optimum), two runs of each in four.
# Everything else agreed far inside the tests' rtol of 1e-6.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

script_path <- function() {
  arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(arg) != 1) stop("run this script with Rscript")
  normalizePath(sub("^--file=", "", arg))
}

root <- dirname(dirname(script_path()))
out_path <- file.path(root, "tests", "reference", "lme4_extractors.json")

# ---- exact JSON numbers ---------------------------------------------------------------------

format_double <- function(x) {
  out <- rep("null", length(x))
  ok <- is.finite(x)
  if (any(is.infinite(x) | is.nan(x))) stop("non-finite values are not supported")
  for (d in 15:17) {
    todo <- which(ok & out == "null")
    if (length(todo) == 0) break
    s <- sprintf(paste0("%.", d, "g"), x[todo])
    good <- as.numeric(s) == x[todo]
    out[todo[good]] <- s[good]
  }
  if (any(ok & out == "null")) stop("could not format a double exactly")
  out
}

verbatim <- function(s) structure(s, class = "json")

# A number (length 1) or a vector of numbers, always written as an array when array = TRUE.
jnum <- function(x, array = length(x) != 1) {
  x <- as.numeric(x)
  s <- format_double(x)
  if (!array) return(verbatim(s))
  verbatim(paste0("[", paste(s, collapse = ","), "]"))
}
jvec <- function(x) jnum(x, array = TRUE)
# A matrix as an array of rows.
jmat <- function(m) {
  m <- as.matrix(m)
  rows <- vapply(seq_len(nrow(m)), function(i) paste0("[", paste(format_double(m[i, ]), collapse = ","), "]"),
                 character(1))
  verbatim(paste0("[", paste(rows, collapse = ","), "]"))
}
# A k x k x n array (lme4's postVar layout) as n matrices k x k (level first).
jarray3 <- function(a) {
  mats <- vapply(seq_len(dim(a)[3]), function(l) unclass(jmat(matrix(a[, , l], dim(a)[1], dim(a)[2]))),
                 character(1))
  verbatim(paste0("[", paste(mats, collapse = ","), "]"))
}
# character / integer vectors wrapped in I() stay JSON arrays when they have one element
named_num <- function(x) list(names = I(names(x)), values = jvec(unname(x)))

# ---- data -----------------------------------------------------------------------------------

read_classroom <- function() {
  cl <- read.csv(file.path(root, "datasets", "classroom.csv"), stringsAsFactors = FALSE)
  cl$sex <- factor(cl$sex, levels = c("M", "F"))
  cl$minority <- factor(cl$minority, levels = c("N", "Y"))
  for (v in c("classid", "schoolid", "childid")) {
    iv <- as.integer(cl[[v]])
    cl[[v]] <- factor(iv, levels = sort(unique(iv)))  # levels sorted numerically, as the manifest
  }
  cl
}
classroom <- read_classroom()

# ---- one fit --------------------------------------------------------------------------------

# The console text of print(x): what print() writes to stdout, with any lines it writes as
# R messages (e.g. summary's "Correlation matrix not shown ..." note) in their place.
text_of <- function(x) {
  capture.output(withCallingHandlers(print(x), message = function(m) {
    cat(conditionMessage(m))
    invokeRestart("muffleMessage")
  }))
}
# Only what print(x) writes to stdout.
stdout_of <- function(x) suppressMessages(capture.output(print(x)))

ranef_record <- function(fm) {
  re <- ranef(fm, condVar = TRUE)
  lapply(setNames(names(re), names(re)), function(f) {
    d <- re[[f]]
    pv <- attr(d, "postVar")
    cv <- if (is.list(pv)) {
      # several terms on one grouping factor: lme4 gives one postVar array per term
      list(per_term = lapply(seq_along(pv), function(i) list(columns = names(pv)[i] %||% NA,
                                                             dim = I(dim(pv[[i]])),
                                                             values = jarray3(pv[[i]]))))
    } else {
      list(dim = I(dim(pv)), values = jarray3(pv))
    }
    list(levels = I(rownames(d)), columns = I(colnames(d)), values = jmat(d), condVar = cv)
  })
}

`%||%` <- function(a, b) if (is.null(a)) b else a

coef_record <- function(fm) {
  cf <- coef(fm)
  lapply(setNames(names(cf), names(cf)), function(f) {
    d <- cf[[f]]
    list(levels = I(rownames(d)), columns = I(colnames(d)), values = jmat(d))
  })
}

varcorr_record <- function(fm) {
  vc <- as.data.frame(VarCorr(fm))
  list(grp = I(vc$grp), var1 = I(vc$var1), var2 = I(vc$var2), vcov = jvec(vc$vcov), sdcor = jvec(vc$sdcor))
}

fit_summary <- function(fm) {
  ll <- logLik(fm)
  list(theta = named_num(getME(fm, "theta")), fixef = named_num(fixef(fm)), sigma = jnum(sigma(fm)),
       logLik = jnum(as.numeric(ll)), logLik_df = attr(ll, "df"),
       deviance_ML = jnum(deviance(fm, REML = FALSE)), REMLcrit = jnum(REMLcrit(fm)),
       isREML = isREML(fm))
}

record_fit <- function(fm, extra = list()) {
  ll <- logLik(fm)
  Zt <- getME(fm, "Zt")
  theta <- getME(fm, "theta")
  V <- as.matrix(vcov(fm))
  y <- getME(fm, "y")
  n <- length(y)
  # two new responses for refit(): a rescaling, and one that changes the variance components
  newresps <- list(times2 = 2 * y, perturbed = y + 10 * sin(seq_len(n)))
  # Also recorded: lme4's resp$REML of the refit (lme4 1.1-31's refit() sets it to 1 for a REML
  # fit, where lmer() sets it to p, the number of fixed effects, so for p > 1 refit() optimises a
  # REML criterion with n - 1 in place of n - p), and, as "fresh", lmer() fitted from scratch to a
  # copy of the data with the new response.
  mf <- model.frame(fm)
  refits <- lapply(newresps, function(ny) {
    rf <- refit(fm, newresp = ny)
    d2 <- mf
    d2[[1]] <- ny
    fresh <- lmer(formula(fm), d2, REML = isREML(fm))
    c(list(newresp = jvec(ny)), fit_summary(rf),
      list(resp_REML = rf@resp$REML, fresh = fit_summary(fresh)))
  })
  upd <- update(fm, REML = !isREML(fm))
  out <- list(
    formula = paste(deparse(formula(fm)), collapse = " "),
    REML = isREML(fm),
    resp_REML = fm@resp$REML,
    nobs = nobs(fm),
    fixef = named_num(fixef(fm)),
    ranef = ranef_record(fm),
    coef = coef_record(fm),
    varcorr = varcorr_record(fm),
    sigma = jnum(sigma(fm)),
    logLik = jnum(as.numeric(ll)),
    logLik_df = attr(ll, "df"),
    AIC = jnum(AIC(fm)),
    BIC = jnum(BIC(fm)),
    deviance_ML = jnum(deviance(fm, REML = FALSE)),
    REMLcrit = jnum(REMLcrit(fm)),
    fitted = jvec(fitted(fm)),
    residuals_response = jvec(residuals(fm, type = "response")),
    residuals_pearson = jvec(residuals(fm, type = "pearson")),
    residuals_pearson_scaled = jvec(residuals(fm, type = "pearson", scaled = TRUE)),
    vcov = list(names = I(colnames(V)), values = jmat(V)),
    theta = named_num(theta),
    Lind = I(as.integer(getME(fm, "Lind"))),
    Gp = I(as.integer(getME(fm, "Gp"))),
    Zt = list(dim = I(dim(Zt)), nnz = length(Zt@x)),
    ngrps = as.list(ngrps(fm)),
    isSingular = isSingular(fm),
    predict = jvec(predict(fm)),
    predict_re_form_NA = jvec(predict(fm, re.form = NA)),
    update_other_REML = fit_summary(upd),
    refit = refits,
    print = I(text_of(fm)),
    summary = I(text_of(summary(fm))),
    print_stdout_only = I(stdout_of(fm)),
    summary_stdout_only = I(stdout_of(summary(fm)))
  )
  c(out, extra)
}

# ---- the fits -------------------------------------------------------------------------------

records <- list()

fm_a <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = TRUE)
nd <- data.frame(Days = c(0.5, 3, 9.5, 0.5, 3, 9.5, 0.5, 3, 9.5),
                 Subject = c("308", "308", "308", "999", "999", "999", "372", "335", "999"),
                 stringsAsFactors = FALSE)
records$sleepstudy_corr <- record_fit(fm_a, list(
  newdata = list(Days = jvec(nd$Days), Subject = I(nd$Subject)),
  predict_newdata_allow_new = jvec(predict(fm_a, newdata = nd, allow.new.levels = TRUE)),
  predict_newdata_re_form_NA = jvec(predict(fm_a, newdata = nd, re.form = NA))
))

fm_b <- lmer(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin, REML = TRUE)
records$penicillin <- record_fit(fm_b)

fm_c <- lmer(Reaction ~ Days + (Days || Subject), sleepstudy, REML = TRUE)
records$sleepstudy_uncorr <- record_fit(fm_c, list(
  predict_re_form_intercept = jvec(predict(fm_c, re.form = ~ (1 | Subject)))
))

fm_d <- lmer(angle ~ recipe * temperature + (1 | recipe:replicate), cake, REML = TRUE)
records$cake <- record_fit(fm_d)

fm_e <- lmer(mathgain ~ mathkind + minority + ses + (1 | classid) + (1 | schoolid), classroom, REML = FALSE)
records$classroom_ml <- record_fit(fm_e)

out <- list(
  provenance = list(
    R = R.version.string,
    lme4 = packageDescription("lme4")$Version,
    Matrix = packageDescription("Matrix")$Version,
    jsonlite = packageDescription("jsonlite")$Version,
    written_by = "scripts/record_lme4_extractors.R",
    date = format(Sys.Date()),
    data = paste("sleepstudy, Penicillin, cake: lme4's data sets;",
                 "classroom: datasets/classroom.csv (sex levels M,F; minority N,Y;",
                 "classid/schoolid factors with levels sorted numerically)"),
    conventions = paste("matrices are arrays of rows; condVar arrays are level-first (levels, k, k),",
                        "transposed from lme4's postVar (k, k, levels); for a grouping factor with",
                        "several terms lme4 gives one postVar array per term (per_term);",
                        "print/summary are the console lines of print(fm) / print(summary(fm)),",
                        "messages included in place; *_stdout_only without the messages")
  ),
  fits = records
)

writeLines(toJSON(out, auto_unbox = TRUE, json_verbatim = TRUE, pretty = TRUE, null = "null", na = "null"),
           out_path)
cat("wrote", out_path, "\n")
