# Dates and times as the `date` and `datetime` template filters write them (src/i18n/dates.rs).
# Times are in UTC, on the 24-hour clock.

month-1 = January
month-2 = February
month-3 = March
month-4 = April
month-5 = May
month-6 = June
month-7 = July
month-8 = August
month-9 = September
month-10 = October
month-11 = November
month-12 = December

# $day (a number), $month (one of the names above), $year
date-long = { $day } { $month } { $year }
# $date (as date-long), $time ("14:05"), or $hour ("14") and $minute ("05")
datetime-long = { $date } at { $time }
