#include "wb/reports.h"
