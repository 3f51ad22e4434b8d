"""Task.instance follows Instance to the `instances` app (same table, no schema change)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('instances', '0001_initial'),
        ('tasks', '0003_redispatch_at'),
    ]

    operations = [
        # State only: the foreign keys already point at the same table.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='task',
                    name='instance',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='tasks', to='instances.instance'),
                ),
            ],
        ),
    ]
