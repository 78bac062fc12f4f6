# Datum und Uhrzeit, wie die Vorlagenfilter `date` und `datetime` sie schreiben.
# Uhrzeiten in UTC, 24-Stunden-Zählung.

month-1 = Januar
month-2 = Februar
month-3 = März
month-4 = April
month-5 = Mai
month-6 = Juni
month-7 = Juli
month-8 = August
month-9 = September
month-10 = Oktober
month-11 = November
month-12 = Dezember

date-long = { $day }. { $month } { $year }
datetime-long = { $date } um { $time } Uhr
